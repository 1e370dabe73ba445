"""Crash-safe checkpoint files for Lightning."""

from __future__ import annotations

from typing import Any

from lightning.fabric.plugins import TorchCheckpointIO

from captcha_crnn.model.io import atomic_torch_save


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file, fsynced, then renamed over the old one.

    Lightning's own writer streams into the final path, so a process killed mid-write can leave a
    truncated `best.ckpt` or `last.ckpt`; with a rename the old file stays whole until the new one is.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        atomic_torch_save(checkpoint, path)
