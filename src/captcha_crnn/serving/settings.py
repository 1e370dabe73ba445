"""What `serve` hands each uvicorn worker: the models, limits, solver and reloading, as environment
variables (a worker is a fresh process started by uvicorn, so the settings cannot travel as objects).
`ServeSettings.to_env()` and `from_env()` are the one place their names are spelt."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from captcha_crnn.serving.limits import ServeLimits

PREFIX = "CAPTCHA_CRNN_"
MODEL = PREFIX + "MODEL"  # the first (or only) model's file: set alone (by hand, for uvicorn), it is served
MODELS = PREFIX + "MODELS"  # JSON [[name, file], ...], all of them, the first being MODEL's
SOLVE = PREFIX + "SOLVE"  # "arithmetic" or empty
RELOAD = PREFIX + "RELOAD"  # seconds between checks of the model files, or empty: no reloading
FOLDERS = PREFIX + "FOLDERS"  # JSON [folder, ...] given on the command line: new files there are served
THREADS = PREFIX + "THREADS"  # inference threads per worker; empty or 0: the backend's default
LIMITS = {  # ServeLimits field -> variable; the others keep their defaults
    "max_body_bytes": PREFIX + "MAX_BODY",
    "max_pixels": PREFIX + "MAX_PIXELS",
    "max_queue": PREFIX + "MAX_QUEUE",
    "request_timeout": PREFIX + "REQUEST_TIMEOUT",
}


@dataclass(frozen=True)
class ServeSettings:
    models: tuple[tuple[str, str], ...]  # (name, file); the first is served at the unnamed routes too
    limits: ServeLimits = field(default_factory=ServeLimits)
    solve: str | None = None
    reload_every: float | None = None  # seconds
    folders: tuple[str, ...] = ()
    threads: int = 0

    def to_env(self) -> dict[str, str]:
        env = {
            MODEL: self.models[0][1],
            MODELS: json.dumps([list(m) for m in self.models]),
            SOLVE: self.solve or "",
            RELOAD: str(self.reload_every) if self.reload_every else "",
            FOLDERS: json.dumps(list(self.folders)),
            THREADS: str(self.threads),
        }
        env.update({name: str(getattr(self.limits, field)) for field, name in LIMITS.items()})
        return env

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ServeSettings:
        """MODELS counts only when its first model is MODEL's: MODEL set alone serves that file."""
        path = env[MODEL]
        models = [tuple(m) for m in json.loads(env.get(MODELS) or "[]")]
        if not models or models[0][1] != path:
            models = [(Path(path).stem or "model", path)]
        default = ServeLimits()
        types = {field: type(getattr(default, field)) for field in LIMITS}
        limits = ServeLimits(
            **{
                field: types[field](env.get(name) or getattr(default, field))
                for field, name in LIMITS.items()
            }
        )
        reload = env.get(RELOAD)
        return cls(
            models=tuple((str(n), str(f)) for n, f in models),
            limits=limits,
            solve=env.get(SOLVE) or None,
            reload_every=float(reload) if reload else None,
            folders=tuple(json.loads(env.get(FOLDERS) or "[]")),
            threads=int(env.get(THREADS) or 0),
        )
