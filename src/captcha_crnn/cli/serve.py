"""`captcha-crnn serve`: the HTTP service (FastAPI on uvicorn) with its web page."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from captcha_crnn.arithmetic import SOLVERS
from captcha_crnn.errors import CaptchaCrnnError
from captcha_crnn.serving.limits import ServeLimits

LIMITS = ServeLimits()  # the defaults, one source for the options and the service
RELOAD_EVERY_S = 2.0  # how often --reload checks the model files


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a model over HTTP, with a web page",
        description="Serve MODEL over HTTP: POST /v1/recognize (one image, multipart or raw "
        "body), POST /v1/recognize/batch, GET /v1/model, GET /healthz, OpenAPI "
        "docs at /docs and a web page at /. With several models, each is also at "
        "/v1/models/NAME/recognize[/batch] and GET /v1/models lists them; the unnamed routes serve the first.",
    )
    p.add_argument(
        "models",
        nargs="+",
        metavar="MODEL",
        help="model.pt, a run's .ckpt, an exported .onnx, 'general' (the shipped model), or a folder "
        "(every .pt, .onnx and .ckpt file in it)",
    )
    p.add_argument(
        "--name",
        metavar="A,B",
        help="the models' names in the URLs, one per model file, comma-separated (default: the file names "
        "without extension)",
    )
    p.add_argument(
        "--solve",
        choices=SOLVERS,
        help='add each reading\'s answer to the JSON ("answer", or null and "answer_error"): arithmetic '
        "captchas, 12×4= -> 48",
    )
    p.add_argument(
        "--reload",
        action="store_true",
        help=f"check the model files every {RELOAD_EVERY_S:g} s and serve a changed one once it loads and "
        "reads a test image (requests in flight finish on the old one; a file that fails keeps the old "
        "one); a new model file in a MODEL folder is served too, under its file name",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument(
        "--workers", type=int, default=1, help="worker processes, each with its own model (default: 1)"
    )
    mb = LIMITS.max_body_bytes / 2**20
    p.add_argument(
        "--max-body-mb", type=float, default=mb, help=f"largest request body in MB (default: {mb:g})"
    )
    p.add_argument(
        "--max-pixels",
        type=int,
        default=LIMITS.max_pixels,
        help=f"largest image in pixels, a decompression-bomb guard (default: {LIMITS.max_pixels})",
    )
    p.add_argument(
        "--max-queue",
        type=int,
        default=LIMITS.max_queue,
        help="images waiting for the model, per worker; more get 503 with Retry-After "
        f"(default: {LIMITS.max_queue})",
    )
    p.add_argument(
        "--request-timeout",
        type=float,
        default=LIMITS.request_timeout,
        metavar="SECONDS",
        help="a request not answered in this time gets 504, a body not all sent in this time 408 "
        f"(default: {LIMITS.request_timeout:g})",
    )
    p.add_argument(
        "--threads",
        type=int,
        help="inference threads per worker (default: CPU cores / workers, at least 1)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    from captcha_crnn.cli.common import check_address, check_numbers
    from captcha_crnn.inference.backends import TorchBackend
    from captcha_crnn.inference.recognizer import Recognizer
    from captcha_crnn.serving.limits import ServeLimits
    from captcha_crnn.serving.models import model_sources
    from captcha_crnn.serving.settings import ServeSettings
    from captcha_crnn.serving.threads import threads_per_worker

    check_numbers(args, at_least_1=("max_pixels",), positive=("max_body_mb", "request_timeout"))
    max_body_bytes = int(args.max_body_mb * 1024 * 1024)
    if max_body_bytes < 1:
        raise CaptchaCrnnError(f"--max-body-mb must allow at least one byte, got {args.max_body_mb}")
    check_address(args.host, args.port)
    sources = model_sources(args.models, args.name)
    # a bad MODEL is one clear line here, not a traceback in each worker
    loaded = [Recognizer.load(path) for _, path in sources]
    torch = any(isinstance(r.backend, TorchBackend) for r in loaded)
    threads = threads_per_worker(args.workers, torch=torch) if args.threads is None else args.threads
    counts = {"--workers": args.workers, "--max-queue": args.max_queue, "--threads": threads}
    for option, value in counts.items():
        if value < 1:
            raise CaptchaCrnnError(f"{option} must be at least 1, got {value}")
    settings = ServeSettings(
        models=tuple(sources),
        limits=ServeLimits(
            max_body_bytes=max_body_bytes,
            max_pixels=args.max_pixels,
            max_queue=args.max_queue,
            request_timeout=args.request_timeout,
        ),
        solve=args.solve,
        reload_every=RELOAD_EVERY_S if args.reload else None,
        folders=tuple(str(m) for m in args.models if Path(m).is_dir()),
        threads=threads,
    )
    os.environ.update(settings.to_env())  # each uvicorn worker reads them (serving.app.app_from_env)
    served = sources[0][1] if len(sources) == 1 else ", ".join(f"{name} ({path})" for name, path in sources)
    print(
        f"serving {served} on http://{args.host}:{args.port}/ with {args.workers} worker(s) x "
        f"{threads} inference thread(s) (docs at /docs)",
        file=sys.stderr,
    )
    uvicorn.run(
        "captcha_crnn.serving.app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
    )
    return 0
