"""Starting weights: fine-tune from an earlier model instead of a random start (`train --init MODEL`).

By default training starts from the shipped general model (`--init general`) whenever the architecture
allows: the same preset and input height. The whole backbone is copied; a grey model takes the colour
model's first convolution summed over its colour channels (the same response to a grey image); the
output layer keeps the rows of the characters both charsets share, and the CTC blank's, so a model starts
out reading the characters it knew, whatever the new charset.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from captcha_crnn.errors import CaptchaCrnnError
from captcha_crnn.model.crnn import CRNN, CRNNConfig
from captcha_crnn.model.io import ModelBundle, load_model

log = logging.getLogger("captcha_crnn")
FIRST_CONV = "features.0.weight"


def mismatch(donor: CRNNConfig, ours: CRNNConfig) -> str | None:
    """Why weights of a `donor` model cannot start an `ours` model, or None when they can."""
    if donor.height != ours.height:
        return f"it was trained for input height {donor.height}, not {ours.height}"
    shape = ("channels", "rnn", "hidden", "layers")
    if any(getattr(donor, k) != getattr(ours, k) for k in shape) or donor.image_norm != ours.image_norm:
        return "its architecture differs (another --preset or --rnn)"
    return None


def initialise_from(model: CRNN, charset: str, source: str | Path, donor: ModelBundle | None = None) -> int:
    """Copy matching weights from the model `source` into `model`; returns how many tensors."""
    donor = donor or load_model(source)
    reason = mismatch(donor.model.config, model.config)
    if reason:
        raise CaptchaCrnnError(f"{source}: cannot start this model: {reason}")
    theirs = donor.model.state_dict()
    ours = model.state_dict()
    backbone = [name for name in ours if not name.startswith("head.")]
    copied = 0
    with torch.no_grad():
        for name in backbone:
            weights = theirs[name]
            if name == FIRST_CONV and weights.shape[1] != ours[name].shape[1]:
                # colour -> grey: sum over colour channels; grey -> colour: a third each. Either way a
                # grey image gives the same response as before (the per-image norm treats both alike).
                weights = weights.sum(1, keepdim=True)
                if ours[name].shape[1] != 1:
                    weights = weights.expand_as(ours[name]) / ours[name].shape[1]
            ours[name].copy_(weights)
            copied += 1
        # Output rows: class 0 is the blank in both; character c is class charset.index(c) + 1.
        rows = [(0, 0)] + [
            (i + 1, donor.charset.index(ch) + 1) for i, ch in enumerate(charset) if ch in donor.charset
        ]
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
