from captcha_crnn.cli.main import main

raise SystemExit(main())
