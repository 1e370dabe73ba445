"""Several models in one service: their names, one micro-batcher each, and reloading changed files.

`serve A.onnx B.pt --name a,b` serves each model at /v1/models/{name}/...; `model_sources` turns the
command line into (name, file) pairs and refuses duplicate or unusable names before anything starts.
With reloading on, `ModelSet.watch` polls the files' modification times; a changed file is loaded in a
thread and self-checked before it replaces the model in its batcher by one attribute assignment. The
batcher reads that attribute once per pass, so requests in flight finish on the model they started with
and none is dropped; a file that fails to load or to self-check leaves the old model serving.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from captcha_crnn.data.images import IMAGE_FORMATS
from captcha_crnn.errors import CaptchaCrnnError, one_line
from captcha_crnn.serving.batcher import ApiError, MicroBatcher

log = logging.getLogger("captcha_crnn.serving")

MODEL_SUFFIXES = (".pt", ".onnx", ".ckpt")  # the files a folder argument serves
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # one URL path segment, no escaping needed

Signature = tuple[int, int, int]  # mtime_ns, size, inode: a file replaced by a rename changes its inode


@dataclass
class ServedModel:
    name: str
    path: str  # as given: a file, or a shipped model's name ("general")
    batcher: MicroBatcher  # its `model` attribute is the model serving now
    signature: Signature | None = None  # the file as last loaded or tried
    reload_error: str | None = None  # why the last changed file was not taken; None once one is

    @property
    def model(self) -> Any:
        return self.batcher.model


def model_file(path: str | Path) -> Path:
    """The file behind a model argument (a shipped model's name resolves to its file)."""
    from captcha_crnn.weights import is_builtin, resolve

    return resolve(path) if is_builtin(path) else Path(path)


def signature(path: str | Path) -> Signature | None:
    try:
        st = os.stat(model_file(path))
    except (OSError, CaptchaCrnnError):
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def model_sources(models: Sequence[str | Path], names: str | None = None) -> list[tuple[str, str]]:
    """(name, path) for each model to serve: a folder stands for its model files, names default to the
    file stems. A CaptchaCrnnError for an empty folder, a --name count that does not match, a name that
    is not one URL segment, or two models with the same name."""
    paths: list[str] = []
    for model in models:
        folder = Path(model)
        if not folder.is_dir():
            paths.append(str(model))
            continue
        try:
            found = _listed(folder)
        except OSError as exc:
            raise CaptchaCrnnError(
                f"{one_line(folder)}: cannot read ({one_line(exc.strerror or exc)})"
            ) from None
        if not found:
            raise CaptchaCrnnError(
                f"{one_line(folder)}: no model files ({', '.join(MODEL_SUFFIXES)}) in this folder"
            )
        paths += [str(p) for p in found]
    if names is None:
        chosen = [Path(p).stem for p in paths]
    else:
        chosen = [n.strip() for n in names.split(",")]
        if len(chosen) != len(paths):
            raise CaptchaCrnnError(
                f"--name gives {len(chosen)} name(s) for {len(paths)} model(s) "
                f"({', '.join(one_line(p) for p in paths)}); give one name per model file"
            )
    for name, path in zip(chosen, paths):
        if not NAME.match(name):
            raise CaptchaCrnnError(
                f"model name {one_line(name, 80)!r} (for {one_line(path)}) must be 1-64 letters, digits, "
                "'.', '_' or '-', starting with a letter or digit; choose names with --name"
            )
    check_unique(list(zip(chosen, paths)))
    return list(zip(chosen, paths))


def check_unique(sources: Sequence[tuple[str, str]]) -> None:
    seen: dict[str, str] = {}
    for name, path in sources:
        if name in seen:
            raise CaptchaCrnnError(
                f"two models are named {name!r} ({one_line(seen[name])} and {one_line(path)}); give each "
                "its own name with --name"
            )
        seen[name] = path


def self_check(model: Any, max_pixels: int) -> None:
    """Read a blank probe image of the model's input size, through the batcher's own calls: a model that
    cannot answer that is not put in service."""
    from PIL import Image

    policy = model.policy
    buf = io.BytesIO()
    Image.new("RGB", (policy.fixed_width or policy.min_width, policy.height), "white").save(buf, "PNG")
    pixels = model.preprocess(buf.getvalue(), "probe.png", max_pixels, IMAGE_FORMATS)
    (pred,) = model.predict_pixels([pixels], model.reading())
    if not isinstance(pred.text, str):
        raise CaptchaCrnnError(f"self-check: the model read {type(pred.text).__name__}, not text")


def _listed(folder: Path) -> list[Path]:
    """The model files directly in `folder`, sorted (OSError when it cannot be read)."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in MODEL_SUFFIXES and p.is_file())


def model_files(folder: Path) -> list[Path]:
    """The model files directly in `folder`, sorted; none when it cannot be read (while serving)."""
    try:
        return _listed(folder)
    except OSError:
        return []


class ModelSet:
    """The models of one service by name, in the order given; the first is the default model.

    With `folders` (folders given on the command line) and reloading on, a model file that appears in one
    of them later is loaded, self-checked and served under its file's stem, by a batcher `new_batcher`
    makes for it."""

    def __init__(
        self,
        served: Sequence[ServedModel],
        loader: Callable[[str], Any],
        folders: Sequence[str] = (),
        new_batcher: Callable[[Any], MicroBatcher] | None = None,
    ) -> None:
        if not served:
            raise ValueError("no models to serve")
        check_unique([(s.name, s.path) for s in served])
        self.by_name = {s.name: s for s in served}
        self.default = served[0]
        self.loader = loader
        self.folders = [Path(f) for f in folders]
        self.new_batcher = new_batcher
        self.refused: dict[str, Signature | None] = {}  # new files not taken, as they were when tried

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.by_name.values())

    def get(self, name: str) -> ServedModel:
        """The model called `name`; 404 naming the models there are."""
        found = self.by_name.get(name)
        if found is None:
            raise ApiError(404, f"no model named {one_line(name, 80)!r}; models: {', '.join(self.by_name)}")
        return found

    async def watch(self, every: float) -> None:
        """Poll every `every` seconds: reload changed files and serve new ones, until cancelled."""
        while True:
            await asyncio.sleep(every)
            for served in list(self):
                try:
                    await self.reload_if_changed(served)
                except Exception as exc:  # never let the watcher die: the models still serve
                    log.error("reloading model %s failed unexpectedly", served.name, exc_info=exc)
            try:
                await self.add_new_files()
            except Exception as exc:
                log.error("serving new model files failed unexpectedly", exc_info=exc)

    async def add_new_files(self) -> list[str]:
        """Serve each model file that appeared in a watched folder since the start (named after its
        stem); one that fails to load or self-check, or whose name is taken or unusable, is warned about
        once and tried again only when it changes. Returns the names added."""
        if self.new_batcher is None:
            return []
        known = {str(Path(s.path)) for s in self}
        added = []
        for folder in self.folders:
            for path in model_files(folder):
                if str(path) in known or self.refused.get(str(path), ()) == signature(path):
                    continue
                name = path.stem
                try:
                    if not NAME.match(name) or name in self.by_name:
                        taken = "is taken" if name in self.by_name else "is not usable in a URL"
                        raise CaptchaCrnnError(f"its name {one_line(name, 80)!r} {taken}")
                    model = await anyio.to_thread.run_sync(self._load_checked, str(path))
                except Exception as exc:
                    self.refused[str(path)] = signature(path)
                    log.warning("new model file %s not served (%s)", one_line(path), one_line(exc, 300))
                    continue
                batcher = self.new_batcher(model)
                batcher.start()
                self.by_name[name] = ServedModel(name, str(path), batcher, signature(path))
                self.refused.pop(str(path), None)
                added.append(name)
                log.info("model %s: serving the new file %s", name, one_line(path))
        return added

    async def reload_if_changed(self, served: ServedModel) -> bool:
        """Load, self-check and swap in the model's file if it changed since it was last loaded or tried.
        A file that fails is tried again only once it changes again, so it is warned about once."""
        now = signature(served.path)
        if now == served.signature:
            return False
        served.signature = now
        try:
            if now is None:
                raise CaptchaCrnnError("the file is gone")
            model = await anyio.to_thread.run_sync(self._load_checked, served.path)
        except Exception as exc:
            served.reload_error = one_line(exc, 300)
            log.warning(
                "model %s: %s changed but was not taken (%s); still serving the model loaded before",
                served.name,
                one_line(served.path),
                served.reload_error,
            )
            return False
        served.batcher.model = model  # atomic: the next pass uses it, a pass under way keeps the old one
        served.reload_error = None
        log.info("model %s: reloaded %s", served.name, one_line(served.path))
        return True

    def _load_checked(self, path: str) -> Any:
        """The model in `path`, once it has read a probe image (every batcher has the same limits)."""
        model = self.loader(path)
        self_check(model, self.default.batcher.limits.max_pixels)
        return model
