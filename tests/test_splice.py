"""Splicing: forced alignment finds each character's frames, and spliced items join two images' parts."""

from __future__ import annotations

import random

import numpy as np
import pytest

from captcha_crnn.data.images import InputPolicy
from captcha_crnn.training.splice import SpliceSet, cuts_from_spans, forced_alignment


def _log_probs(path: list[int], classes: int = 5, sure: float = 0.9) -> np.ndarray:
    """Frames that each favour one class of `path`."""
    probs = np.full((len(path), classes), (1 - sure) / (classes - 1))
    probs[np.arange(len(path)), path] = sure
    return np.log(probs)


def test_forced_alignment_finds_each_characters_frames() -> None:
    # frames: blank blank a a blank b b blank
    spans = forced_alignment(_log_probs([0, 0, 1, 1, 0, 2, 2, 0]), [1, 2])
    assert spans == [(2, 3), (5, 6)]


def test_forced_alignment_keeps_to_the_label_where_the_model_reads_otherwise() -> None:
    # The model reads "a c" but the label is "a b": b takes the frames of the likeliest path that reads it.
    spans = forced_alignment(_log_probs([0, 1, 0, 3, 3, 0]), [1, 2])
    assert spans[0] == (1, 1)
    assert spans[1][0] >= 2 and spans[1][1] <= 5


def test_forced_alignment_puts_a_blank_between_repeated_characters() -> None:
    spans = forced_alignment(_log_probs([1, 1, 1, 1, 0, 0]), [1, 1])
    (a_first, a_last), (b_first, b_last) = spans
    assert a_last < b_first - 1  # at least one blank frame between the two
    assert a_first <= a_last and b_first <= b_last


def test_cuts_fall_halfway_between_characters() -> None:
    assert cuts_from_spans([(2, 3), (6, 7)], stride=4) == [20]  # frames 4-5 lie between: columns 16..24
    assert cuts_from_spans([(2, 3), (-1, -1)], stride=4) is None


class _Base:
    def __init__(self, pixels: list[np.ndarray], targets: list[list[int]]) -> None:
        self.pixels, self.targets = pixels, targets

    def widths(self) -> list[int]:
        return [p.shape[1] for p in self.pixels]

    def __len__(self) -> int:
        return len(self.pixels)


def test_a_spliced_item_joins_one_images_head_to_anothers_tail() -> None:
    policy = InputPolicy(height=4, min_width=8, max_width=400)
    pixels = [np.full((4, 40), v, dtype=np.uint8) for v in (10, 20, 30)]
    targets = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    cuts = [[12, 24], [14, 28], [10, 20]]
    spliced = SpliceSet(_Base(pixels, targets), policy, 1.0, cuts)
    random.seed(1)
    seen = set()
    for _ in range(50):
        image, label, index = spliced[0]
        assert index == 0
        k = next(n for n in range(1, 3) if label[:n] == targets[0][:n] and label[n] != targets[0][n])
        j = next(j for j in (1, 2) if label[k:] == targets[j][k:])
        head, tail = cuts[0][k - 1], cuts[j][k - 1]
        assert image.shape == (4, head + 40 - tail)
        assert (image[:, :head] == 10).all() and (image[:, head:] == pixels[j][0, 0]).all()
        seen.add((k, j))
    assert len(seen) == 4  # every cut place and every partner


@pytest.mark.parametrize("share", [0.0])
def test_no_share_or_no_alignment_leaves_items_as_they_are(share: float) -> None:
    policy = InputPolicy(height=4, min_width=8, max_width=400)
    pixels = [np.full((4, 40), v, dtype=np.uint8) for v in (10, 20, 30)]
    targets = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    off = SpliceSet(_Base(pixels, targets), policy, share, [[12, 24]] * 3)
    unaligned = SpliceSet(_Base(pixels, targets), policy, 1.0, [None, [14, 28], [10, 20]])
    for i in range(3):
        assert off[i][1] == targets[i]
    assert unaligned[0][1] == targets[0]
    assert all(unaligned[1][1] in ([4, 5, 6], [4, 8, 9], [4, 5, 9]) for _ in range(20))


def test_align_finds_increasing_cuts_inside_each_image(reading_model, captcha_dir) -> None:
    from captcha_crnn.data.labels import collect
    from captcha_crnn.data.tokenizer import CTCTokenizer
    from captcha_crnn.model.io import load_model
    from captcha_crnn.training.datamodule import ImageSet, scan

    bundle = load_model(reading_model)
    items = collect(captcha_dir)[:10]
    base = ImageSet(scan(items, "training", lazy=False), CTCTokenizer(bundle.charset), bundle.policy)
    spliced = SpliceSet(base, bundle.policy, 1.0)
    assert not any(spliced.cuts)  # nothing is spliced before the characters are found
    spliced.align(bundle.model)
    for cuts, pixels in zip(spliced.cuts, spliced.pixels):
        assert cuts is not None and len(cuts) == 3  # 4 digits: 3 boundaries
        assert 0 < cuts[0] < cuts[1] < cuts[2] < pixels.shape[1]
    image, label, _ = spliced[0]
    assert len(label) == 4 and image.shape[0] == bundle.policy.height


def test_train_records_the_splice_share_and_refuses_a_bad_one(tmp_path, captcha_dir, capsys) -> None:
    import json

    from captcha_crnn.cli.main import main

    run = tmp_path / "run"
    base = ["train", str(captcha_dir), "--no-progress", "--steps", "4"]
    assert main([*base, "--out", str(run), "--splice", "0.5"]) == 0
    record = json.loads((run / "run.json").read_text())
    assert record["splice"] == 0.5 and record["choices"]["splice"] == "0.5 (--splice)"
    assert main([*base, "--out", str(tmp_path / "r2"), "--splice", "1.5"]) == 2
    assert "--splice must be between 0 and 1" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "r3"), "--splice", "0.5", "--init", "none"]) == 2
    assert "--splice needs starting weights" in capsys.readouterr().err
    assert not (tmp_path / "r2").exists() and not (tmp_path / "r3").exists()
