"""Fixtures are made with the project's own generator: the suite needs no data from outside."""

from __future__ import annotations

from pathlib import Path

import pytest

from captcha_crnn.cli.main import main
from captcha_crnn.data.synthetic import Style, generate


@pytest.fixture(scope="session")
def captcha_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 generated 4-digit captchas with labels.csv."""
    out = tmp_path_factory.mktemp("captchas")
    generate(out, 48, Style(length=(4, 4), width=(100, 100), height=40), seed=1)
    return out


@pytest.fixture(scope="session")
def stem_dir(tmp_path_factory: pytest.TempPathFactory, captcha_dir: Path) -> Path:
    """The same images renamed to `<label>.png`, the plainest user layout (no labels file)."""
    out = tmp_path_factory.mktemp("stems")
    for line in (captcha_dir / "labels.csv").read_text().splitlines()[1:]:
        name, label = line.split(",")
        target = out / f"{label}.png"
        if not target.exists():
            target.write_bytes((captcha_dir / name).read_bytes())
    return out


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, captcha_dir: Path) -> Path:
    """A tiny model trained through the CLI for two epochs: enough to test the plumbing, not accuracy."""
    run = tmp_path_factory.mktemp("run") / "r"
    code = main(
        [
            "-q",
            "train",
            str(captcha_dir),
            "--out",
            str(run),
            "--max-epochs",
            "2",
            "--batch-size",
            "16",
            "--no-progress",
            "--seed",
            "3",
        ]
    )
    assert code == 0
    return run


@pytest.fixture(scope="session")
def reading_model(tmp_path_factory):
    """An untrained digit model made to read something in every frame (its blank bias pushed down), so
    that what a restriction changes shows."""
    import torch

    from captcha_crnn.data.images import InputPolicy
    from captcha_crnn.model.crnn import CRNN, config_from_preset
    from captcha_crnn.model.io import save_model

    torch.manual_seed(0)
    model = CRNN(config_from_preset("nano", 11, 32))
    with torch.no_grad():
        model.head.weight.mul_(40)  # frames differ enough to read different digits
        model.head.bias[0] = -20.0
    path = tmp_path_factory.mktemp("charset") / "model.pt"
    save_model(path, model, "0123456789", InputPolicy(32, 80, 80, 4), {})
    return path
