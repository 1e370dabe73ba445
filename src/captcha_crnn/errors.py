"""User-facing errors: the CLI prints their message as one line and exits non-zero, no traceback."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("captcha_crnn")


class CaptchaCrnnError(Exception):
    """A problem with the user's input (file, label, option); the message names the file and the fix."""


class ImageError(CaptchaCrnnError):
    """An image that cannot be read or decoded."""


class UnsupportedImageError(ImageError):
    """Not an image, or an image format this tool does not read."""


class CorruptImageError(ImageError):
    """A recognised format whose data is truncated or damaged."""


class ImageTooLargeError(ImageError):
    """More pixels than allowed: a guard against decompression bombs."""


class LabelError(CaptchaCrnnError):
    """A label that the model cannot learn or score (unknown character, too long, missing)."""


class OptionError(LabelError):
    """A reading option (`charset`, `length`) the model cannot take. It carries the option's name and the
    problem apart, so that each front end words the name its own way: `--charset` on the command line
    (the message), `charset` in the service (`f"{option} {problem}"`)."""

    def __init__(self, option: str, problem: str) -> None:
        super().__init__(f"--{option} {problem}")
        self.option, self.problem = option, problem


class ModelFileError(CaptchaCrnnError):
    """A file given as MODEL that is not a captcha-crnn model."""


def one_line(text: object, limit: int | None = None) -> str:
    """`text` safe to put in a one-line message: line breaks, control and other invisible characters
    (and the lone surrogates that undecodable file names hold) are written as escapes such as \\n or
    \\x00; with `limit`, text longer than that is cut and ends in "..."."""
    text = str(text)
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 3, 0)] + "..."
    return text


def warn_skipped(messages: Sequence[str], what: str = "") -> None:
    """One warning for all the files skipped as unreadable: how many, and the first one's reason."""
    if messages:
        kind = f"{what} " if what else ""
        log.warning("skipped %d unreadable %sfile(s), e.g. %s", len(messages), kind, messages[0])


def refuse_existing(path: Path, force: bool, hint: str = "pass --force to replace it") -> None:
    """Never overwrite what the user has: an existing `path` is an error unless `force`."""
    if path.exists() and not force:
        raise CaptchaCrnnError(f"{path}: already exists; {hint}")
