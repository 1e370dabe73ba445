import pytest

from captcha_crnn.inference.evaluate import character_error_rate


def test_cer_is_edits_over_label_characters():
    assert character_error_rate(["7041"], ["7041"]) == 0.0
    assert character_error_rate(["7041"], ["7091"]) == pytest.approx(1 / 4)
    # one substitution (4 chars) + one deletion (5 chars) over 9 label characters
    assert character_error_rate(["7041", "abcde"], ["7091", "abce"]) == pytest.approx(2 / 9)
    assert character_error_rate(["ab"], ["abxyz"]) == pytest.approx(3 / 2)
    assert character_error_rate([], []) == 0.0


def test_evaluate_scores_a_known_model_exactly(tmp_path):
    """A stub network that always spells "7041": one right image, one wrong, exact metrics."""
    import torch
    from PIL import Image

    from captcha_crnn.data.images import InputPolicy
    from captcha_crnn.data.labels import collect
    from captcha_crnn.data.tokenizer import CTCTokenizer
    from captcha_crnn.inference.evaluate import evaluate
    from captcha_crnn.inference.recognizer import Recognizer

    charset = "0123456789"
    tok = CTCTokenizer(charset)
    path = [0, *tok.encode("7041"), 0] + [0] * 14  # 20 frames for an 80-pixel-wide input

    class Spell7041(torch.nn.Module):
        def forward(self, images: torch.Tensor) -> torch.Tensor:
            logits = torch.full((images.shape[0], images.shape[3] // 4, len(charset) + 1), -10.0)
            logits[:, torch.arange(20), torch.tensor(path)] = 10.0
            return logits

    for name in ["7041.png", "7091.png"]:
        Image.new("L", (100, 40), 255).save(tmp_path / name)
    rec = Recognizer(Spell7041(), charset, InputPolicy(32, 80, 80, 4))
    result = evaluate(rec, collect(tmp_path))
    assert result.count == 2
    assert result.sequence_accuracy == 0.5
    assert result.cer == pytest.approx(1 / 8)
    assert result.char_accuracy == pytest.approx(7 / 8)
    assert [(e["label"], e["prediction"]) for e in result.errors] == [("7091", "7041")]
    assert result.errors[0]["confidence"] > 0.99
    assert result.loss > 1.0  # the wrong image's true path is very unlikely

    short = tmp_path / "short"  # "1" read as "7041": a CER of 3, which leaves no character right, not -200%
    short.mkdir()
    Image.new("L", (100, 40), 255).save(short / "1.png")
    result = evaluate(rec, collect(short))
    assert result.cer == pytest.approx(3.0) and result.char_accuracy == 0.0


@pytest.mark.parametrize("target", [[1, 2, 3], [2, 2, 1], [3], [], [1, 1, 1, 1]])
def test_numpy_ctc_loss_matches_torch(target):
    import torch
    import torch.nn.functional as F

    from captcha_crnn.inference.evaluate import ctc_loss

    log_probs = torch.randn(12, 5, generator=torch.Generator().manual_seed(3)).log_softmax(-1)
    ours = ctc_loss([log_probs.numpy()], [target])
    theirs = F.ctc_loss(
        log_probs[:, None],
        torch.tensor([target], dtype=torch.long).reshape(1, -1),
        [12],
        [len(target)],
        reduction="mean",
        zero_infinity=True,
    ).item()
    assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-6)


def test_numpy_ctc_loss_impossible_alignment_counts_zero():
    import numpy as np

    from captcha_crnn.inference.evaluate import ctc_loss

    log_probs = np.log(np.full((2, 4), 0.25))
    assert ctc_loss([log_probs], [[1, 1, 1]]) == 0.0  # needs 5 frames, has 2: infinite -> 0
