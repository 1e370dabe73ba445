"""`captcha-crnn preview DATA`: what a data set looks like before training on it."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from captcha_crnn.data.images import display_pixels, open_image
from captcha_crnn.data.labels import LabelledImage
from captcha_crnn.errors import ImageError
from captcha_crnn.reporting.plots import Tile, image_grid


@dataclass
class DatasetSummary:
    count: int = 0
    unreadable: list[str] = field(default_factory=list)
    sizes: Counter[str] = field(default_factory=Counter)
    lengths: Counter[int] = field(default_factory=Counter)
    chars: Counter[str] = field(default_factory=Counter)

    def lines(self) -> list[str]:
        def top(counter: Counter, n: int = 8) -> str:
            items = counter.most_common(n)
            more = f", ... ({len(counter) - n} more)" if len(counter) > n else ""
            return ", ".join(f"{k} ({v})" for k, v in items) + more

        out = [
            f"images:        {self.count} readable, {len(self.unreadable)} unreadable",
            f"sizes:         {top(self.sizes)}",
            f"label lengths: {', '.join(f'{k} ({v})' for k, v in sorted(self.lengths.items()))}",
            f"characters:    {len(self.chars)}: "
            + " ".join(f"{ch!r}:{n}" if ch.isspace() else f"{ch}:{n}" for ch, n in self.chars.most_common()),
        ]
        out += [f"unreadable:    {msg}" for msg in self.unreadable[:5]]
        if len(self.unreadable) > 5:
            out.append(f"               ... and {len(self.unreadable) - 5} more")
        return out


def preview(items: Sequence[LabelledImage], out: Path, count: int = 40, seed: int = 0) -> DatasetSummary:
    """Read every image for the statistics; draw a seeded sample of `count` of them into `out`."""
    summary = DatasetSummary()
    readable: list[LabelledImage] = []
    for item in items:
        try:
            with open_image(item.path) as img:
                summary.sizes[f"{img.width}x{img.height}"] += 1
        except ImageError as exc:
            summary.unreadable.append(str(exc))
            continue
        readable.append(item)
        summary.lengths[len(item.label)] += 1
        summary.chars.update(item.label)
    summary.count = len(readable)
    sample = random.Random(seed).sample(readable, min(count, len(readable)))
    tiles = [
        Tile(display_pixels(open_image(it.path)), it.label)
        for it in sorted(sample, key=lambda i: str(i.path))
    ]
    image_grid(tiles, out, f"{len(tiles)} of {summary.count} images, with their labels")
    return summary
