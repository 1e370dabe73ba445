"""Starting from pre-trained weights: what is copied, what is mapped, what is refused."""

from __future__ import annotations

import pytest
import torch

from captcha_crnn.data.images import InputPolicy
from captcha_crnn.errors import CaptchaCrnnError
from captcha_crnn.model.crnn import CRNN, config_from_preset
from captcha_crnn.model.init import RNN_INPUTS, initialise_from, resize_height
from captcha_crnn.model.io import load_model, save_model


def donor_file(tmp_path, charset: str, preset: str = "nano", height: int = 32):
    torch.manual_seed(0)
    model = CRNN(config_from_preset(preset, len(charset) + 1, height))
    path = tmp_path / f"{preset}-{height}.pt"
    save_model(path, model, charset, InputPolicy(height, 64, 64, 4), {})
    return path, model


def test_backbone_is_copied_and_output_rows_follow_the_characters(tmp_path):
    path, donor = donor_file(tmp_path, "0123456789")
    torch.manual_seed(1)
    model = CRNN(config_from_preset("nano", 4, 32))  # charset "7x0": '7' and '0' known, 'x' new
    fresh_x = model.head.weight[2].clone()
    initialise_from(model, "7x0", path)
    for name, tensor in model.state_dict().items():
        if not name.startswith("head."):
            assert torch.equal(tensor, donor.state_dict()[name]), name
    assert torch.equal(model.head.weight[0], donor.head.weight[0])  # blank
    assert torch.equal(model.head.weight[1], donor.head.weight[1 + 7])  # '7'
    assert torch.equal(model.head.weight[3], donor.head.weight[1 + 0])  # '0'
    assert torch.equal(model.head.weight[2], fresh_x)  # 'x' keeps its random start


def test_weights_for_another_architecture_are_refused(tmp_path):
    path, _ = donor_file(tmp_path, "0123456789", preset="paper")
    with pytest.raises(CaptchaCrnnError, match="architecture differs"):
        initialise_from(CRNN(config_from_preset("nano", 11, 32)), "0123456789", path)


def test_weights_of_another_height_start_a_model_with_the_rnn_inputs_resized(tmp_path):
    path, donor = donor_file(tmp_path, "0123456789", height=32)
    model = CRNN(config_from_preset("nano", 11, 48))
    initialise_from(model, "0123456789", path)
    ours, theirs = model.state_dict(), donor.state_dict()
    for name in ours:
        if name not in RNN_INPUTS:
            assert torch.equal(ours[name], theirs[name]), name
    # 64 channels x 2 feature rows -> x 3: the middle row is the mean of the two, all scaled by 2/3
    old = theirs["rnn.weight_ih_l0"].reshape(-1, 64, 2)
    new = ours["rnn.weight_ih_l0"].reshape(-1, 64, 3)
    assert torch.allclose(new[..., 0], old[..., 0] * 2 / 3) and torch.allclose(
        new[..., 2], old[..., 1] * 2 / 3
    )
    assert torch.allclose(new[..., 1], (old[..., 0] + old[..., 1]) / 3)


def test_only_the_first_recurrent_layer_is_resized(tmp_path):
    """Two LSTM layers (the paper's preset): the second layer's inputs are the first's outputs, whatever
    the height; only layer 0's input weights (both directions) change shape."""
    path, donor = donor_file(tmp_path, "0123456789", preset="medium", height=32)
    model = CRNN(config_from_preset("medium", 11, 64))
    initialise_from(model, "0123456789", path)
    ours, theirs = model.state_dict(), donor.state_dict()
    for name in RNN_INPUTS:
        assert ours[name].shape == (4 * 128, 256 * 4) and theirs[name].shape == (4 * 128, 256 * 2)
    assert torch.equal(ours["rnn.weight_ih_l1"], theirs["rnn.weight_ih_l1"])
    assert torch.equal(ours["rnn.weight_ih_l1_reverse"], theirs["rnn.weight_ih_l1_reverse"])


def test_resized_rnn_inputs_answer_a_feature_the_same_in_every_row_as_before():
    torch.manual_seed(0)
    weights = torch.randn(6, 4 * 2)
    feature = torch.randn(4)  # one value a channel, repeated down the rows (channel-major frames)
    for rows in (1, 2, 3, 4):
        resized = resize_height(weights, 4, 4 * rows)
        assert resized.shape == (6, 4 * rows)
        assert torch.allclose(
            resized @ feature.repeat_interleave(rows), weights @ feature.repeat_interleave(2), atol=1e-5
        )


def test_train_init_fine_tunes_from_an_earlier_run(tmp_path, trained_run, captcha_dir, capsys):
    import json

    from captcha_crnn.cli.main import main

    run = tmp_path / "tuned"
    args = ["train", str(captcha_dir), "--out", str(run), "--max-epochs", "1", "--no-progress"]
    assert main([*args, "--init", str(trained_run / "model.pt")]) == 0
    assert "starting from" in capsys.readouterr().err
    # the network is the model file's own size (the fixture's few labels trained the reader's, small)
    assert json.loads((run / "run.json").read_text())["choices"]["model"].startswith(
        "small at height 32, the size of"
    )
    code = main([*args, "--force", "--preset", "nano", "--init", str(trained_run / "model.pt")])
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and last.startswith("error: ") and "architecture differs" in last


def test_colour_weights_start_a_grey_model_with_the_same_response_to_grey_images(tmp_path):
    torch.manual_seed(0)
    colour = CRNN(config_from_preset("nano", 11, 32, in_channels=3)).eval()
    path = tmp_path / "colour.pt"
    save_model(path, colour, "0123456789", InputPolicy(32, 64, 64, 4, 3), {})
    grey = CRNN(config_from_preset("nano", 11, 32, in_channels=1)).eval()
    initialise_from(grey, "0123456789", path)
    image = torch.rand(2, 1, 32, 64)
    with torch.no_grad():
        assert torch.allclose(grey(image), colour(image.expand(-1, 3, -1, -1)), atol=1e-5)


def test_train_starts_from_the_general_model_when_it_fits_and_says_so(tmp_path, captcha_dir):
    import json

    from captcha_crnn.cli.main import main

    base = ["train", str(captcha_dir), "--max-epochs", "1", "--no-progress"]
    # a few labels (5 validation images): the reader's size, from the reader's weights
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    choices = json.loads((tmp_path / "a" / "run.json").read_text())["choices"]
    assert "general model" in choices["start"] and "(general)" in choices["start"]
    assert choices["model"].startswith("small at height 32, the general reader's size")
    assert choices["height"].startswith(
        "32: what the network reads (the image, or its text once cut) is 40 px"
    )
    reader = load_model("general").policy.height  # the reader's own height (48 since stage 8)
    other = 32 if reader == 48 else 48
    assert ("resized" in choices["start"]) == (reader != 32)
    assert main([*base, "--out", str(tmp_path / "h"), "--height", str(other)]) == 0  # the reader, resized
    choices = json.loads((tmp_path / "h" / "run.json").read_text())["choices"]
    assert f"(general), read at height {reader} and resized to {other}" in choices["start"]
    assert choices["model"].startswith(f"small at height {other}, the general reader's size")
    assert main([*base, "--out", str(tmp_path / "s"), "--preset", "nano"]) == 0  # the base's size
    choices = json.loads((tmp_path / "s" / "run.json").read_text())["choices"]
    assert "general model" in choices["start"] and "(general-base)" in choices["start"]
    assert main([*base, "--out", str(tmp_path / "b"), "--preset", "medium"]) == 0  # neither fits: random
    choices = json.loads((tmp_path / "b" / "run.json").read_text())["choices"]
    assert choices["start"].startswith("random weights: the shipped general model does not fit")
    assert choices["model"] == "medium at height 32 (--preset)"
    assert main([*base, "--out", str(tmp_path / "c"), "--init", "none", "--stretch", "1"]) == 0
    run = json.loads((tmp_path / "c" / "run.json").read_text())
    assert run["choices"]["start"].endswith("(--init none)")
    # --stretch 1 keeps the aspect ratio (100x40 -> 80x32), where the default widens to 96 (test_end_to_end)
    assert (run["input_policy"]["max_width"], run["choices"]["stretch"]) == (80, "1 (--stretch)")


def test_the_network_follows_the_start():
    from captcha_crnn.data.images import InputPolicy
    from captcha_crnn.options import TrainOptions
    from captcha_crnn.training.plan import _capacity

    policy = InputPolicy(height=32, channels=3)
    assert _capacity(TrainOptions(data=None), policy)[0] == "small"  # the general reader's preset
    assert _capacity(TrainOptions(data=None), InputPolicy(height=48, channels=3)) == (
        "small",
        "small at height 48, the general reader's size, so its weights start training: they read more of a "
        "new site than the smaller base's (--preset nano: the base, about twice as fast an epoch)",
    )
    assert _capacity(TrainOptions(data=None, init=None), policy)[0] == "nano"  # no reader to start from
    assert _capacity(TrainOptions(data=None, preset="medium"), policy) == (
        "medium",
        "medium at height 32 (--preset)",
    )


def test_the_input_height_follows_the_text_height_in_the_median_image():
    from captcha_crnn.options import TrainOptions
    from captcha_crnn.training.plan import _height

    def height(*heights, **options):
        return _height(TrainOptions(data=None, **options), [(100, h) for h in heights])

    assert height(80, 80, 24)[0] == 80  # securimage's 200x80: its own height
    assert height(50, 50, 90)[0] == 48 and height(63)[0] == 48 and height(79)[0] == 64
    assert height(140)[0] == 80 and height(100, 300)[0] == 80  # taller ones shrink to at most 80
    assert height(40, 47)[0] == 32 and height(24)[0] == 32 and height(16)[0] == 32
    assert height(80, height=32) == (32, "32 (--height)")
    assert "is 80 px tall in the median image" in height(80)[1] and "--height 32" in height(80)[1]


def test_a_stretch_out_of_range_is_one_line_and_writes_nothing(tmp_path, captcha_dir, capsys):
    from captcha_crnn.cli.main import main

    code = main(["train", str(captcha_dir), "--out", str(tmp_path / "r"), "--stretch", "5"])
    assert code == 2 and "--stretch must be between 0.25 and 3, got 5" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_init_is_refused_on_resume(trained_run, capsys):
    from captcha_crnn.cli.main import main

    code = main(["train", "x", "--out", str(trained_run), "--resume", "--init", "none"])
    assert code == 2 and "--init has no effect on --resume" in capsys.readouterr().err


def test_how_often_validation_runs_does_not_change_the_trained_weights(tmp_path, captcha_dir, monkeypatch):
    """Each loader draws its iterators' seeds from a generator of its own: validating after every epoch
    or only after the last trains the same weights (augmentation and dropout keep their random stream)."""
    import torch

    from captcha_crnn.cli.main import main
    from captcha_crnn.training import system

    base = ["-q", "train", str(captcha_dir), "--no-progress", "--batch-size", "16", "--devices", "1"]
    weights = []
    for name, validations in (("every", 20), ("last", 1)):  # 3 epochs: validated 3 times, or once
        monkeypatch.setattr(system, "FIXED_VALIDATIONS", validations)
        assert main([*base, "--out", str(tmp_path / name), "--steps", "7"]) == 0
        rows = (tmp_path / name / "metrics.csv").read_text().splitlines()[1:]
        assert [row.split(",")[0] for row in rows] == (["1", "2", "3"] if validations == 20 else ["3"])
        weights.append(torch.load(tmp_path / name / "checkpoints" / "last.ckpt", weights_only=True))
    every, last = (w["state_dict"] for w in weights)
    assert every.keys() == last.keys() and all(torch.equal(every[k], last[k]) for k in every)


def test_fine_tuning_on_few_labels_runs_whole_epochs_of_a_fixed_schedule(tmp_path, captcha_dir):
    import json

    import torch

    from captcha_crnn.cli.main import main

    # one process: two would each take half of every epoch, and the arithmetic below is one's
    base = ["-q", "train", str(captcha_dir), "--no-progress", "--batch-size", "16", "--devices", "1"]
    assert main([*base, "--out", str(tmp_path / "a"), "--steps", "7"]) == 0
    run = json.loads((tmp_path / "a" / "run.json").read_text())
    assert run["options"]["schedule"] == "fixed" and run["choices"]["schedule"].startswith("fixed: 7 batches")
    # 43 training images in batches of 16 are 3 steps an epoch: 7 steps round up to 3 whole epochs, and
    # the last one's weights are the ones saved
    assert len((tmp_path / "a" / "metrics.csv").read_text().splitlines()) == 1 + 3
    assert torch.load(tmp_path / "a" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 9
    # resumed once finished, it has nothing left to train; the schedule's length is the recorded one
    assert main([*base, "--out", str(tmp_path / "a"), "--resume"]) == 0
    assert len((tmp_path / "a" / "metrics.csv").read_text().splitlines()) == 1 + 3
    assert torch.load(tmp_path / "a" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 9
    # a random start waits out the blank plateau: the plateau schedule, bounded by --max-epochs
    assert main([*base, "--out", str(tmp_path / "b"), "--init", "none", "--max-epochs", "1"]) == 0
    run = json.loads((tmp_path / "b" / "run.json").read_text())
    assert run["options"]["schedule"] == "plateau" and "random start" in run["choices"]["schedule"]
