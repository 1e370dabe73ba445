"""The labelling session: which image comes next, what the model suggests, and saving what the user typed.

The folder is listed once (names only: no image is decoded up front). The model's suggestions are made
in a background thread, a chunk at a time, and on demand for the image being shown, so the page answers
at once even for thousands of images; once every image is scored, `--order confidence` puts the least
certain first (where the user's typing is worth most).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from captcha_crnn.data.images import open_image
from captcha_crnn.data.labels import find_images
from captcha_crnn.errors import CaptchaCrnnError, ImageError, LabelError, one_line
from captcha_crnn.labelling.store import LABELLED, UNREADABLE, LabelStore, Row

log = logging.getLogger("captcha_crnn")
ORDERS = ("confidence", "name")
UPCOMING = 4  # images shown small after the current one


@dataclass(frozen=True)
class Suggestion:
    text: str | None  # None: no model, or the image could not be read
    confidence: float | None


def _inside(root: Path, images: list[Path]) -> list[Path]:
    """The images whose real path is inside `root`: a symlink to a file elsewhere would let anyone who
    can reach the page read that file. Says once how many were left out."""
    top = root.resolve()
    kept = [p for p in images if p.resolve().is_relative_to(top)]
    outside = [p for p in images if not p.resolve().is_relative_to(top)]
    if outside:
        log.warning(
            "%d image(s) of %s are symlinks to files outside it, left out (e.g. %s); "
            "--follow-symlinks serves them too",
            len(outside),
            one_line(root),
            one_line(outside[0].name),
        )
    if not kept:
        raise CaptchaCrnnError(
            f"{one_line(root)}: every image is a symlink to outside it; see --follow-symlinks"
        )
    return kept


class Workbench:
    def __init__(
        self,
        root: Path,
        store: LabelStore,
        recognizer: Any = None,
        charset: str | None = None,
        order: str = "confidence",
        follow_symlinks: bool = False,
    ) -> None:
        if order not in ORDERS:
            raise CaptchaCrnnError(f"--order must be one of {', '.join(ORDERS)}, got {order!r}")
        self.root, self.store, self.order = root, store, order
        images = find_images(root)
        if not follow_symlinks:
            images = _inside(root, images)
        self.files = [p.relative_to(root).as_posix() for p in images]
        self.known = set(self.files)
        self.missing = sorted(rel for rel in store.rows if rel not in self.known)
        if self.missing:
            log.warning(
                "%s has %d row(s) for files not in %s (kept as they are), e.g. %s",
                one_line(store.path),
                len(self.missing),
                one_line(root),
                one_line(self.missing[0]),
            )
        self.recognizer = recognizer
        # What a label may hold: --charset, or anything without spaces. The model may not know every
        # character (a new alphabet, arithmetic signs): its suggestions keep to the part it can read.
        self.charset = "".join(dict.fromkeys(charset)) if charset else None
        self.suggestions: dict[str, Suggestion] = {}
        self.broken: dict[str, str] = {}  # unreadable image files -> why
        self.skipped: list[str] = []  # Esc: to the back of the queue, for this session
        self._opened: set[str] = set()  # without a model: images already found readable
        self._scorer: threading.Thread | None = None
        self.generation = 0  # bumped when the model changes: the scoring thread then starts over
        self._lock = threading.RLock()
        self._model_lock = threading.Lock()

    # ------------------------------------------------------------------ the model's suggestions

    def start(self) -> None:
        """Score every image in the background (no-op without a model)."""
        if self.recognizer is not None:
            self._scorer = threading.Thread(target=self._score_all, args=(self.generation,), daemon=True)
            self._scorer.start()

    def stop(self) -> None:
        """Let the scoring thread finish its chunk and end: a process that exits while onnxruntime is
        mid-run in another thread aborts."""
        with self._lock:
            self.generation += 1
        if self._scorer is not None:
            self._scorer.join()

    def use_model(self, recognizer: Any) -> None:
        """Suggest with a new model (after a retrain) and score everything again."""
        with self._lock:
            self.recognizer, self.generation = recognizer, self.generation + 1
            self.suggestions = {}
        self.start()

    def _score_all(self, generation: int, chunk: int = 256) -> None:
        for start in range(0, len(self.files), chunk):
            if generation != self.generation:
                return
            rels = self.files[start : start + chunk]
            with self._model_lock:
                results = list(self.recognizer.stream([self.root / r for r in rels]))
            with self._lock:
                if generation != self.generation:
                    return
                for rel, (_, scores) in zip(rels, results):
                    self._keep(rel, scores)

    def _keep(self, rel: str, scores: Any) -> None:
        if isinstance(scores, ImageError):
            self.broken[rel] = str(scores)
            return
        self.broken.pop(rel, None)  # read now (an image that was still being copied in, say)
        pred = self.recognizer.decode(scores, self._reading())
        self.suggestions[rel] = Suggestion(pred.text, round(float(pred.confidence), 6))

    def _reading(self) -> Any:
        """Suggestions keep to the characters of --charset that the current model can read."""
        known = set(self.recognizer.charset) | {c.swapcase() for c in self.recognizer.charset}
        readable = "".join(c for c in self.charset or "" if c in known)
        return self.recognizer.reading(readable or None)

    def suggestion(self, rel: str) -> Suggestion:
        """The model's reading of one image, made now if the background scoring has not got there."""
        with self._lock:
            found = self.suggestions.get(rel)
        if found is not None:
            return found
        if self.recognizer is None:  # no model to read it: still find out whether it can be shown
            if rel not in self._opened and rel not in self.broken:
                try:
                    open_image(self.root / rel)
                    with self._lock:
                        self._opened.add(rel)
                except ImageError as exc:
                    with self._lock:
                        self.broken[rel] = str(exc)
            return Suggestion(None, None)
        generation = self.generation
        with self._model_lock:
            scores = next(iter(self.recognizer.stream([self.root / rel])))[1]
        with self._lock:
            if generation == self.generation:
                self._keep(rel, scores)
            return self.suggestions.get(rel, Suggestion(None, None))

    # ------------------------------------------------------------------ what comes next

    def queue(self) -> list[str]:
        """Images still to label, in working order; skipped ones go last."""
        with self._lock:
            rows, skipped = self.store.rows, set(self.skipped)
            todo = [r for r in self.files if r not in rows and r not in self.broken and r not in skipped]
            if self.order == "confidence" and self.recognizer is not None:
                scored = len(self.suggestions) + len(self.broken) >= len(self.files)
                if scored:  # before every image is scored the order would keep changing under the user
                    todo.sort(
                        key=lambda r: (self.suggestions.get(r) or Suggestion(None, None)).confidence or 0.0
                    )
            return todo + [r for r in self.skipped if r not in rows and r not in self.broken]

    def next(self) -> dict[str, Any] | None:
        """The next image to label with its suggestion, the few after it, and the counts; None when done."""
        while True:
            queue = self.queue()
            if not queue:
                return None
            rel = queue[0]
            found = self.suggestion(rel)
            if rel not in self.broken:  # reading it just now may have found it unreadable: take the next
                break
        return {
            "file": rel,
            "suggestion": found.text,
            "confidence": found.confidence,
            "upcoming": queue[1 : 1 + UPCOMING],
            **self.counts(),
        }

    def item(self, rel: str) -> dict[str, Any]:
        """One image's saved row and suggestion (for going back)."""
        self._check_file(rel)
        row = self.store.rows.get(rel)
        found = self.suggestion(rel)
        return {
            "file": rel,
            "suggestion": found.text,
            "confidence": found.confidence,
            "label": row.label if row else None,
            "status": row.status if row else None,
        }

    def unreadable_files(self) -> dict[str, str]:
        with self._lock:
            return dict(self.broken)

    def counts(self) -> dict[str, Any]:
        with self._lock:
            rows = [self.store.rows[r] for r in self.files if r in self.store.rows]
            return {
                "labelled": sum(r.status == LABELLED for r in rows),
                "unreadable": sum(r.status == UNREADABLE for r in rows),
                "accepted": sum(r.accepted for r in rows),
                "total": len(self.files) - len(self.broken),
                "scored": len(self.suggestions),
            }

    # ------------------------------------------------------------------ saving

    def label(self, rel: str, text: str, shown: str | None = None) -> Row:
        """Save `text` as the label of `rel`, beside the suggestion `shown` to the user (None: the current
        one); LabelError when the charset refuses it."""
        self._check_file(rel)
        text = text.strip()
        if not text:
            raise LabelError("the label is empty; type the text, or mark the image as unreadable")
        unseen = "".join(dict.fromkeys(ch for ch in text if ch.isspace() or not ch.isprintable()))
        if unseen:  # a space, a NUL, a zero-width or direction mark: no captcha glyph, and no training label
            raise LabelError(f"the label {text!r} has spaces or invisible characters: {unseen!r}")
        bad = "".join(dict.fromkeys(ch for ch in text if self.charset and ch not in self.charset))
        if bad:
            raise LabelError(
                f"the label {text!r} has characters outside the charset: {bad!r} "
                f"(the charset in use is {self.charset!r})"
            )
        suggestion = self.suggestion(rel).text if shown is None else shown
        return self._save(rel, Row(text, LABELLED, suggestion or ""))

    def unreadable(self, rel: str) -> Row:
        """Mark `rel` as unreadable: it stays out of training (an empty label `train` skips)."""
        self._check_file(rel)
        return self._save(rel, Row("", UNREADABLE, self.suggestion(rel).text or ""))

    def skip(self, rel: str) -> None:
        self._check_file(rel)
        with self._lock:
            if rel in self.skipped:
                self.skipped.remove(rel)
            self.skipped.append(rel)

    def _save(self, rel: str, row: Row) -> Row:
        with self._lock:
            self.store.set(rel, row)
            if rel in self.skipped:
                self.skipped.remove(rel)
        return row

    def _check_file(self, rel: str) -> None:
        if rel not in self.known:
            raise KeyError(rel)

    def labelled(self) -> list[tuple[str, str]]:
        """(file, label) of every labelled image in the folder, for training."""
        with self._lock:
            return [(r, self.store.rows[r].label) for r in self.files if self._is_labelled(r)]

    def _is_labelled(self, rel: str) -> bool:
        row = self.store.rows.get(rel)
        return row is not None and row.status == LABELLED and rel not in self.broken

    def review(self) -> list[dict[str, Any]]:
        """Every labelled image with the model's reading; those where the model disagrees come first, the
        most confident disagreement first: where a good model is sure and the label says otherwise, the
        label is the likelier typo."""
        items = []
        for rel, label in self.labelled():
            found = self.suggestion(rel)
            disagrees = found.text is not None and found.text != label
            items.append(
                {
                    "file": rel,
                    "label": label,
                    "suggestion": found.text,
                    "confidence": found.confidence,
                    "disagrees": disagrees,
                }
            )
        return sorted(items, key=lambda item: (not item["disagrees"], -(item["confidence"] or 0.0)))
