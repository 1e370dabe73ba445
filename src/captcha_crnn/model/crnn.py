"""The CRNN of Shi, Bai & Yao (2015): conv features -> sequence along the width -> BiRNN -> CTC classes.

Plain `nn.Module`, no training code: inference and export import only this.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from captcha_crnn.model.presets import DEFAULT_PRESET, PRESETS, Preset

# Where the poolings sit: after conv blocks 0 and 1 a 2x2 pool halves height and width; after blocks 3
# and 5 the paper's tall-narrow (2, 1) pool halves only the height, so the sequence keeps width / 4
# frames: enough for long labels, and 4 pixels per frame resolves touching characters.
POOLS: dict[int, tuple[int, int]] = {0: (2, 2), 1: (2, 2), 3: (2, 1), 5: (2, 1)}
WIDTH_STRIDE = 4
HEIGHT_STRIDE = 16


@dataclass(frozen=True)
class CRNNConfig:
    num_classes: int
    height: int = 32
    channels: tuple[int, ...] = (64, 128, 256, 256, 512, 512)
    rnn: str = "lstm"
    hidden: int = 256
    layers: int = 2
    dropout: float = 0.1
    in_channels: int = 1  # 3 for colour input; models saved before colour input have no field: grey
    # Standardise each image (per-channel mean, one scale) inside the network, so a faint or low-contrast
    # style reaches the first convolution at the same scale as a bold one. Older models: [0, 1] -> [-1, 1].
    image_norm: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CRNNConfig:
        data = dict(data)
        data["channels"] = tuple(data["channels"])
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


__all__ = ["CRNN", "DEFAULT_PRESET", "PRESETS", "CRNNConfig", "Preset", "config_from_preset"]


def config_from_preset(
    name: str, num_classes: int, height: int, rnn: str | None = None, in_channels: int = 1
) -> CRNNConfig:
    """The preset's architecture; `rnn` ("lstm" or "gru") overrides the preset's recurrent layer."""
    preset = PRESETS[name]
    return CRNNConfig(
        num_classes,
        height,
        preset.channels,
        rnn or preset.rnn,
        preset.hidden,
        in_channels=in_channels,
        image_norm=True,
        **preset.extra,
    )


class CRNN(nn.Module):
    """(B, C, H, W) images in [0, 1] -> (B, W / 4, num_classes) logits, blank = class 0."""

    def __init__(self, config: CRNNConfig) -> None:
        super().__init__()
        if config.height % HEIGHT_STRIDE:
            raise ValueError(f"input height must be a multiple of {HEIGHT_STRIDE}, got {config.height}")
        self.config = config
        layers: list[nn.Module] = []
        in_ch = config.in_channels
        for i, out_ch in enumerate(config.channels):
            layers += [
                nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
                nn.BatchNorm2d(out_ch),
                nn.ReLU(True),
            ]
            if i in POOLS:
                layers.append(nn.MaxPool2d(POOLS[i], POOLS[i]))
            in_ch = out_ch
        self.features = nn.Sequential(*layers)
        feature_size = in_ch * (config.height // HEIGHT_STRIDE)
        rnn_cls = {"lstm": nn.LSTM, "gru": nn.GRU}[config.rnn]
        self.rnn = rnn_cls(
            feature_size,
            config.hidden,
            num_layers=config.layers,
            bidirectional=True,
            batch_first=True,
            dropout=config.dropout if config.layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(2 * config.hidden, config.num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.config.image_norm:
            mean = images.mean(dim=(2, 3), keepdim=True)
            # The image's standard deviation, written out: torch.std's one-pass reduction is ~25x slower on
            # a CPU (a twentieth of a training step). Over thousands of pixels, dividing by n rather than
            # n - 1 changes it by less than float32 rounding matters here.
            centred = images - images.mean(dim=(1, 2, 3), keepdim=True)
            std = centred.square().mean(dim=(1, 2, 3), keepdim=True).sqrt()
            x = self.features((images - mean) / (std + 0.02))  # + 0.02: a blank image stays finite
        else:
            x = self.features(images * 2.0 - 1.0)  # [0, 1] -> [-1, 1]
        b, c, h, w = x.shape
        x = x.permute(0, 3, 1, 2).reshape(b, w, c * h)  # map to sequence: one frame per column
        x, _ = self.rnn(x)
        return self.head(self.dropout(x))
