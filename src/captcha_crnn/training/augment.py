"""Training-time augmentation on whole batches, mild enough that the text stays readable.

Small affine jitter (rotation, shear, scale, shift), contrast/brightness changes and pixel noise: the
variation a captcha generator itself produces, so a few hundred images act like many more.

Written with torch's `affine_grid`/`grid_sample` rather than kornia: kornia's augmentations cost ~300 ms
per 32-image batch on a 2-core CPU (per-op parameter handling), three times the training step itself;
this costs a few milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Augmentation:
    p: float = 0.9  # share of images that get the geometric jitter
    degrees: float = 4.0
    shear: float = 0.15  # horizontal shear, as a fraction of height per unit width
    scale: tuple[float, float] = (0.9, 1.08)
    shift: tuple[float, float] = (0.04, 0.08)  # max fraction of width, height
    contrast: tuple[float, float] = (0.7, 1.3)
    brightness: float = 0.12
    noise: float = 0.03

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> augmented, same shape, in [0, 1]."""
        b, _, h, w = images.shape
        device = images.device

        def uniform(lo: float, hi: float) -> torch.Tensor:
            return torch.rand(b, generator=generator, device=device) * (hi - lo) + lo

        angle = uniform(-self.degrees, self.degrees) * math.pi / 180
        scale = uniform(*self.scale)
        shear = uniform(-self.shear, self.shear)
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        aspect = w / h  # rotate in pixel space: normalised coordinates stretch x by the aspect ratio
        theta = torch.zeros(b, 2, 3, device=device)
        theta[:, 0, 0] = cos
        theta[:, 0, 1] = (shear - sin) / aspect
        theta[:, 1, 0] = sin * aspect
        theta[:, 1, 1] = cos
        theta[:, 0, 2] = uniform(-self.shift[0], self.shift[0]) * 2
        theta[:, 1, 2] = uniform(-self.shift[1], self.shift[1]) * 2
        keep = torch.rand(b, generator=generator, device=device) >= self.p
        theta[keep] = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], device=device)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)

        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        contrast = uniform(*self.contrast).view(b, 1, 1, 1)
        brightness = uniform(-self.brightness, self.brightness).view(b, 1, 1, 1)
        out = (out - mean) * contrast + mean + brightness
        noise = torch.randn(out.shape, generator=generator, device=device) * uniform(0, self.noise).view(
            b, 1, 1, 1
        )
        return (out + noise).clamp_(0.0, 1.0)
