"""Named model sizes. Torch-free, so the CLI can list them without importing torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Preset:
    description: str
    channels: tuple[int, ...]
    hidden: int
    extra: dict[str, Any] = field(default_factory=dict)


PRESETS: dict[str, Preset] = {
    # The paper's widths (64..512) and 256-unit BiLSTM.
    "paper": Preset(
        "the paper's CRNN: 64-512 conv channels, 2x256 BiLSTM", (64, 128, 256, 256, 512, 512), 256
    ),
    # Half the conv widths and hidden size: ~4x fewer FLOPs, the same accuracy on captchas (BENCHMARKS.md).
    "small": Preset("CPU-sized CRNN: 32-256 conv channels, 2x128 BiLSTM", (32, 64, 128, 128, 256, 256), 128),
}
DEFAULT_PRESET = "small"
