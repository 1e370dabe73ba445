"""The shipped general model: loads by name (ONNX, without torch), carries its recipe, is checked against
its checksum, reads captchas, and starts a grey or colour model of any charset. Two models answer to
`general`: the reader, and the base that fine-tuning starts from."""

import json
import shutil
import subprocess
import sys

import pytest

from captcha_crnn import Recognizer
from captcha_crnn.data.general import CHARSET
from captcha_crnn.errors import ModelFileError
from captcha_crnn.model.io import load_model
from captcha_crnn.weights import HERE, manifest


def test_loads_by_name_with_its_recipe_and_checksums():
    record = manifest()
    assert set(record["files"]) == {"general.pt", "general.onnx"}
    assert record["recipe"]["seed"] and record["recipe"]["fonts"] and record["trained"]["images"] > 0
    assert all((HERE / name).stat().st_size < 10_000_000 for name in record["files"])
    rec = Recognizer.load("general")
    assert rec.meta["path"] == "general" and set(rec.charset) == set(CHARSET) and rec.policy.channels == 3
    bundle = load_model("general")  # the PyTorch weights, what fine-tuning starts from
    assert bundle.charset == rec.charset and bundle.meta["recipe"] == record["recipe"]


def test_a_larger_reader_reads_and_a_nano_base_starts_fine_tuning():
    from captcha_crnn.model.presets import PRESETS
    from captcha_crnn.weights import base_for, resolve

    base = manifest("general-base")
    assert set(base["files"]) == {"general-base.pt"} and base["recipe"]["seed"]
    assert all((HERE / name).stat().st_size < 10_000_000 for name in base["files"])
    reader, starter = load_model("general"), load_model("general-base")

    def size(bundle):
        return sum(p.numel() for p in bundle.model.parameters())

    assert size(reader) > 3 * size(starter)  # capacity where reading with no training needs it
    assert starter.model.config.channels == PRESETS["nano"].channels  # what `train` builds by default
    assert base_for("general") == ["general-base", "general"]
    assert resolve("general-base", ".onnx").name == "general-base.pt"  # it ships no ONNX file


def test_a_file_that_does_not_match_its_checksum_is_refused(tmp_path, monkeypatch):
    from captcha_crnn import weights

    for name in ("general.json", "general.onnx", "general.pt"):
        shutil.copy(HERE / name, tmp_path / name)
    data = bytearray((tmp_path / "general.onnx").read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / "general.onnx").write_bytes(bytes(data))
    monkeypatch.setattr(weights, "HERE", tmp_path)
    weights._verify.cache_clear()
    try:
        with pytest.raises(ModelFileError, match="does not match its checksum"):
            Recognizer.load("general")
        load_model("general")  # the .pt is untouched: still fine
    finally:
        weights._verify.cache_clear()


def test_a_file_named_general_wins_over_the_shipped_model(tmp_path, monkeypatch, trained_run):
    shutil.copy(trained_run / "model.pt", tmp_path / "general")
    monkeypatch.chdir(tmp_path)
    assert Recognizer.load("general").charset == "0123456789"


def test_slim_install_reads_with_the_general_model_without_torch(captcha_dir):
    image = sorted(captcha_dir.glob("*.png"))[0]
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['lightning'] = None; "
        "from captcha_crnn.cli.main import main; "
        f"assert main(['predict', 'general', {str(image)!r}, '--json', '--charset', '0123456789']) == 0"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert set(json.loads(out)["text"]) <= set("0123456789")


def test_a_folder_named_general_does_not_hide_the_shipped_model(tmp_path, monkeypatch):
    (tmp_path / "general").mkdir()  # e.g. a data folder of that name
    monkeypatch.chdir(tmp_path)
    assert set(Recognizer.load("general").charset) == set(CHARSET)


@pytest.mark.parametrize(
    "look",
    [
        {"fonts": ("dejavu-sans",), "background": "white"},
        {"fonts": ("droid-mono",), "background": "light", "strike_lines": (1, 1)},
    ],
)
def test_the_shipped_weights_read_plain_captchas_with_no_training(look):
    """Fonts the recipe never drew (the suite's): the shipped weights read them, not just load."""
    import random

    from captcha_crnn.data.looks import Look, draw

    rng = random.Random(0)
    labels = ["".join(rng.choice("0123456789") for _ in range(4)) for _ in range(20)]
    images = [draw(Look(**look), text, 120, 40, random.Random(i)) for i, text in enumerate(labels)]
    readings = Recognizer.load("general").predict(images, charset="0123456789")
    assert sum(r.text == text for r, text in zip(readings, labels)) >= 19
