"""Named model sizes. Torch-free, so the CLI can list them without importing torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Preset:
    description: str
    channels: tuple[int, ...]
    hidden: int
    rnn: str = "lstm"
    extra: dict[str, Any] = field(default_factory=dict)


PRESETS: dict[str, Preset] = {
    # The paper's widths (64..512) and 256-unit BiLSTM.
    "paper": Preset(
        "the paper's CRNN: 64-512 conv channels, 2x256 BiLSTM", (64, 128, 256, 256, 512, 512), 256
    ),
    "medium": Preset("CPU-sized CRNN: 32-256 conv channels, 2x128 BiLSTM", (32, 64, 128, 128, 256, 256), 128),
    # A BiGRU rather than a BiLSTM: on captcha-v2 the GRU leaves CTC's all-blank plateau in
    # ~200 steps where the LSTM was still on it after 400 (docs/accuracy.md); the narrow convs make it
    # ~3x faster than "medium" on a CPU.
    "small": Preset(
        "CPU-fast CRNN: 16-128 conv channels, 2x128 BiGRU", (16, 32, 64, 64, 128, 128), 128, "gru"
    ),
    # The default: a third of small's FLOPs (44 vs 134 MFLOP at 128x32) and one BiGRU layer, not two.
    # With two layers, CTC's all-blank plateau lasted 50+ epochs on some captcha-v2 splits (seeds 3 and
    # 7); with one it ends by epoch ~16 on both (docs/accuracy.md).
    "nano": Preset(
        "fastest CRNN: 12-64 conv channels, 1x64 BiGRU", (12, 24, 48, 48, 64, 64), 64, "gru", {"layers": 1}
    ),
}
DEFAULT_PRESET = "nano"
