"""Starting weights: fine-tune from an earlier model (`train --init MODEL`) instead of a random start.

Typical use: train on many generated captchas (`train --synthetic N`), then fine-tune on a small real set.
The whole backbone is copied (the architecture must match); the output layer keeps the rows of the
characters both charsets share, and the CTC blank's, so a model starts out knowing the characters it knew.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from captcha_crnn.errors import CaptchaCrnnError
from captcha_crnn.model.crnn import CRNN
from captcha_crnn.model.io import load_model

log = logging.getLogger("captcha_crnn")


def initialise_from(model: CRNN, charset: str, source: str | Path) -> int:
    """Copy matching weights from the model file `source` into `model`; returns how many tensors."""
    donor = load_model(source)
    if donor.model.config.height != model.config.height:
        raise CaptchaCrnnError(
            f"{source}: pre-trained for input height {donor.model.config.height}, not {model.config.height}"
        )
    theirs = donor.model.state_dict()
    ours = model.state_dict()
    backbone = [name for name in ours if not name.startswith("head.")]
    if any(name not in theirs or theirs[name].shape != ours[name].shape for name in backbone):
        raise CaptchaCrnnError(
            f"{source}: its weights do not fit this model's architecture (another preset?)"
        )
    copied = 0
    with torch.no_grad():
        for name in backbone:
            ours[name].copy_(theirs[name])
            copied += 1
        # Output rows: class 0 is the blank in both; character c is class charset.index(c) + 1.
        rows = [(0, 0)] + [
            (i + 1, donor.charset.index(ch) + 1) for i, ch in enumerate(charset) if ch in donor.charset
        ]
        if ours["head.weight"].shape[1] == theirs["head.weight"].shape[1]:
            for mine, source_row in rows:
                ours["head.weight"][mine] = theirs["head.weight"][source_row]
                ours["head.bias"][mine] = theirs["head.bias"][source_row]
            copied += 2
    model.load_state_dict(ours)
    log.info(
        "starting from %s (%d tensors; %d of %d characters known)",
        source,
        copied,
        len(rows) - 1,
        len(charset),
    )
    return copied
