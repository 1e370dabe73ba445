"""Starting weights: fine-tune from an earlier model instead of a random start (`train --init MODEL`).

By default training starts from the shipped general model (`--init general`) whenever the architecture
allows: the same preset. The whole backbone is copied; a grey model takes the colour model's first
convolution summed over its colour channels (the same response to a grey image); a model of another input
height takes the recurrent layer's input weights resized along the height (the convolutions do not depend
on it); the output layer keeps the rows of the characters both charsets share, and the CTC blank's, so a
model starts out reading the characters it knew, whatever the new charset.
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
RNN_INPUTS = ("rnn.weight_ih_l0", "rnn.weight_ih_l0_reverse")  # the only weights whose shape follows height


def mismatch(donor: CRNNConfig, ours: CRNNConfig) -> str | None:
    """Why weights of a `donor` model cannot start an `ours` model, or None when they can."""
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
            if name in RNN_INPUTS and weights.shape != ours[name].shape:
                weights = resize_height(weights, model.config.channels[-1], ours[name].shape[1])
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


def resize_height(weights: torch.Tensor, channels: int, size: int) -> torch.Tensor:
    """A recurrent layer's input weights for frames of `size` values (channels x feature rows, channel
    major) from those for another height. Each old row's weight is spread over the part of the height it
    covered and each new row takes what falls in its own part: 2 rows -> 3 gives (2/3 a, (a + b)/3, 2/3 b),
    so a feature the same in every row gives the same input as before."""
    rows, new_rows = weights.shape[1] // channels, size // channels
    edges_old = torch.linspace(0, 1, rows + 1, dtype=torch.float64)
    edges_new = torch.linspace(0, 1, new_rows + 1, dtype=torch.float64)
    low = torch.maximum(edges_new[:-1, None], edges_old[None, :-1])
    high = torch.minimum(edges_new[1:, None], edges_old[None, 1:])
    share = ((high - low).clamp(min=0) * rows).to(weights.dtype)  # (new_rows, rows)
    by_row = weights.reshape(weights.shape[0], channels, rows)
    return (by_row @ share.T).reshape(weights.shape[0], size)
