"""The service's limits, shared by the app (request checks) and the micro-batcher (queue and passes)."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class ServeLimits:
    max_body_bytes: int = 2 * 1024 * 1024
    max_pixels: int = 4096 * 4096  # as images.DEFAULT_MAX_PIXELS, which this module must not import
    max_batch: int = 64  # images in one /batch request
    # Pixels of one /batch request's images together, from their headers: decoding runs on the batching
    # thread, where 64 images of 4096x4096 (1.4 MB of blank PNGs) held every other request for 15 s.
    max_batch_pixels: int = 4 * 4096 * 4096
    max_queue_batch: int = 64  # images in one forward pass across concurrent requests
    max_queue: int = 512  # images waiting for the model; more get 503 + Retry-After
    request_timeout: float = 30.0  # seconds a request may wait for its answer before 504

    def __post_init__(self) -> None:
        for f in fields(self):
            if not getattr(self, f.name) > 0:
                raise ValueError(f"{f.name} must be positive, got {getattr(self, f.name)}")
