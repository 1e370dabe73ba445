"""The HTTP service (`captcha-crnn serve`): FastAPI over the same Recognizer as the CLI and the API."""
