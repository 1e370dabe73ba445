"""Colour input: kept when the data has it, grey otherwise; old grey models still load and read the same;
the weights' moving average is what a run saves."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from captcha_crnn.cli.main import main
from captcha_crnn.data.images import (
    InputPolicy,
    has_colour,
    load_for_model,
    stack_batch,
    to_grayscale,
    to_pixels,
)
from captcha_crnn.data.looks import Look
from captcha_crnn.data.synthetic import Style, generate
from captcha_crnn.model.crnn import CRNN, CRNNConfig
from captcha_crnn.model.io import load_model


def test_colour_images_keep_three_channels_grey_ones_one():
    rgb = Image.new("RGB", (20, 10), (200, 30, 30))
    grey = Image.new("RGB", (20, 10), (90, 90, 90))
    assert to_pixels(rgb).shape == (10, 20, 3)
    assert to_pixels(grey).shape == (10, 20)
    assert has_colour(to_pixels(rgb)) and not has_colour(np.zeros((4, 4, 3), np.uint8))


def test_grey_policy_reads_exactly_what_the_grey_loader_read():
    """A model trained before colour input (grey policy) gets the same pixels as before, for every mode."""
    rng = np.random.default_rng(0)
    rgba = Image.fromarray(rng.integers(0, 256, (12, 30, 4), dtype=np.uint8), "RGBA")
    rgb = rgba.convert("RGB")
    for img in (rgba, rgb, rgb.convert("L"), rgba.convert("LA")):
        grey = InputPolicy(height=12, min_width=4, max_width=400, channels=1)
        assert np.array_equal(grey.convert(to_pixels(img)), to_grayscale(img))


def test_batches_are_channels_first():
    policy = InputPolicy(height=8, min_width=8, max_width=64, channels=3)
    pixels = [np.zeros((8, 16, 3), np.uint8), np.full((8, 24, 3), 255, np.uint8)]
    images, lengths = stack_batch(pixels, policy)
    assert images.shape == (2, 3, 8, 24) and lengths.tolist() == [4, 6]
    assert images[0, :, :, 16:].max() == 0.0  # padded with the image's own last column


def test_colour_policy_widens_a_grey_image(tmp_path):
    path = tmp_path / "g.png"
    Image.new("L", (40, 16), 100).save(path)
    pixels = load_for_model(path, InputPolicy(height=16, min_width=8, max_width=64, channels=3))
    assert pixels.shape == (16, 40, 3) and (pixels == 100).all()


def test_models_saved_before_colour_input_load_as_grey():
    config = CRNNConfig(num_classes=11, channels=(4, 4, 4, 4, 4, 4), hidden=8, layers=1).to_dict()
    for key in ("in_channels", "image_norm"):
        config.pop(key)
    model = CRNN(CRNNConfig.from_dict(config))
    assert model.features[0].in_channels == 1 and not model.config.image_norm
    assert (
        InputPolicy.from_dict({"height": 32, "min_width": 32, "max_width": 64, "width_stride": 4}).channels
        == 1
    )


def test_image_norm_makes_the_network_blind_to_contrast_and_brightness():
    config = CRNNConfig(
        num_classes=5, channels=(4, 4, 4, 4, 4, 4), hidden=8, layers=1, in_channels=3, image_norm=True
    )
    model = CRNN(config).eval()
    images = torch.rand(2, 3, 32, 64)
    faint = 0.6 + 0.1 * images  # the same picture at a tenth of the contrast, brighter
    with torch.no_grad():
        assert torch.allclose(model(images), model(faint), atol=0.05)


@pytest.fixture(scope="module")
def hue_only_dir(tmp_path_factory):
    """Glyphs that differ from their background in hue but not in brightness: invisible in grey."""
    out = tmp_path_factory.mktemp("hue")
    look = Look(background="texture", colours="equiluminant")
    generate(out, 24, Style(length=(3, 3), width=(96, 96), height=32, look=look), seed=5)
    return out


def test_training_on_colour_data_chooses_colour_input_and_says_why(tmp_path, hue_only_dir, capsys):
    run = tmp_path / "run"
    assert main(["train", str(hue_only_dir), "--out", str(run), "--max-epochs", "1", "--no-progress"]) == 0
    record = json.loads((run / "run.json").read_text())
    assert record["input_policy"]["channels"] == 3 and record["model_config"]["in_channels"] == 3
    assert record["choices"]["input"].startswith("colour")
    out, err = capsys.readouterr()
    assert "chosen from the data: input colour" in err
    assert "GPU available" not in out + err  # Lightning's own chatter stays quiet
    assert load_model(run / "model.pt").policy.channels == 3


def test_channels_option_forces_grey(tmp_path, hue_only_dir):
    run = tmp_path / "run"
    args = ["-q", "train", str(hue_only_dir), "--out", str(run), "--max-epochs", "1", "--channels", "1"]
    assert main([*args, "--no-progress"]) == 0
    assert json.loads((run / "run.json").read_text())["input_policy"]["channels"] == 1


def test_model_file_holds_the_moving_average_not_the_last_step(trained_run):
    raw = torch.load(trained_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    ema = raw["state_dict"]["ema_model.head.weight"]
    live = raw["state_dict"]["model.head.weight"]
    assert not torch.equal(ema, live)
    assert torch.equal(load_model(trained_run / "checkpoints" / "last.ckpt").model.head.weight, ema)


def test_the_average_starts_from_the_first_trained_weights_not_the_random_ones():
    from types import SimpleNamespace

    from captcha_crnn.model.crnn import config_from_preset
    from captcha_crnn.training.system import CRNNSystem

    system = CRNNSystem(config_from_preset("nano", 11, 32).to_dict(), "0123456789", {"height": 32})
    with torch.no_grad():
        for p in system.model.parameters():
            p.add_(1.0)  # the live weights move away from the initial ones the average was copied from
    system._trainer = SimpleNamespace(global_step=1, should_stop=False)  # after the first optimiser step
    system.on_train_batch_end(None, None, 0)
    for ema, live in zip(system.ema_model.parameters(), system.model.parameters()):
        assert torch.equal(ema, live)
