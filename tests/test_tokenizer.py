import numpy as np
import pytest

from captcha_crnn.data.tokenizer import BLANK, CTCTokenizer
from captcha_crnn.errors import LabelError


def one_hot_log_probs(ids: list[int], classes: int, p: float = 0.9) -> np.ndarray:
    """Frames whose most likely class is ids[t], with probability p."""
    probs = np.full((len(ids), classes), (1 - p) / (classes - 1))
    probs[np.arange(len(ids)), ids] = p
    return np.log(probs)


def test_charset_from_labels_is_sorted_unique():
    tok = CTCTokenizer.from_labels(["b2a", "ab1"])
    assert tok.charset == "12ab"
    assert tok.num_classes == 5


def test_encode_decode_round_trip():
    tok = CTCTokenizer("0123456789abc")
    for label in ["7041", "abc", "0", "a0a0"]:
        ids = tok.encode(label)
        assert BLANK not in ids
        assert tok.decode_ids(ids) == label


def test_encode_unknown_character_names_it():
    with pytest.raises(LabelError, match="'x'"):
        CTCTokenizer("0123").encode("01x3")


def test_repeated_charset_rejected():
    with pytest.raises(LabelError):
        CTCTokenizer("abca")


def test_greedy_collapses_repeats_and_drops_blanks():
    tok = CTCTokenizer("an")  # a=1, n=2
    # a a _ n _ n n _  -> "ann": the blank between the n's keeps both
    text, _ = tok.greedy_decode(one_hot_log_probs([1, 1, 0, 2, 0, 2, 2, 0], 3))
    assert text == "ann"
    # n n n with no blank collapses to one n
    text, _ = tok.greedy_decode(one_hot_log_probs([2, 2, 2], 3))
    assert text == "n"
    text, _ = tok.greedy_decode(one_hot_log_probs([0, 0, 0], 3))
    assert text == ""


def test_greedy_respects_length_and_confidence_is_best_path_probability():
    tok = CTCTokenizer("ab")
    lp = one_hot_log_probs([1, 0, 2, 2], 3, p=0.8)
    text, conf = tok.greedy_decode(lp, length=2)
    assert text == "a"
    assert conf == pytest.approx(0.8**2)
    _, full = tok.greedy_decode(lp)
    assert 0.0 <= full <= 1.0
    assert full == pytest.approx(0.8**4)


def test_min_frames_counts_blanks_between_repeats():
    assert CTCTokenizer.min_frames("abc") == 3
    assert CTCTokenizer.min_frames("aab") == 4
    assert CTCTokenizer.min_frames("nnnn") == 7
