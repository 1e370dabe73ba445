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
