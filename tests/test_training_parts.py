"""Augmentation and the plateau-aware early stopping, tested without a full training run."""

from types import SimpleNamespace

import torch

from captcha_crnn.training.augment import Augmentation
from captcha_crnn.training.callbacks import PatientEarlyStopping


def test_augmentation_keeps_shape_and_range_and_changes_pixels():
    images = torch.rand(8, 1, 32, 128)
    out = Augmentation()(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert not torch.allclose(out, images)


def test_augmentation_is_reproducible_and_identity_when_switched_off():
    images = torch.rand(4, 1, 32, 96)
    a = Augmentation()(images, torch.Generator().manual_seed(3))
    b = Augmentation()(images, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    off = Augmentation(p=0.0, contrast=(1.0, 1.0), brightness=0.0, noise=0.0)
    assert torch.allclose(off(images), images, atol=1e-5)


def test_augmentation_geometry_moves_text_but_not_much():
    """A vertical bar in the middle stays near the middle under the default jitter."""
    images = torch.ones(16, 1, 32, 128)
    images[:, :, 8:24, 62:66] = 0.0
    out = Augmentation(noise=0.0, contrast=(1.0, 1.0), brightness=0.0, p=1.0)(
        images, torch.Generator().manual_seed(1)
    )
    cols = (out[:, 0] < 0.5).float().sum(dim=1)  # dark pixels per column
    centre = (cols * torch.arange(128)).sum(dim=1) / cols.sum(dim=1)
    assert ((centre - 64).abs() < 12).all()
    assert (centre - 64).abs().max() > 0.5  # and it does move


def fake_trainer(step: int, cer: float) -> SimpleNamespace:
    return SimpleNamespace(
        callback_metrics={"val_cer": torch.tensor(cer)},
        fast_dev_run=False,
        global_step=step,
        current_epoch=step // 10,
        should_stop=False,
        strategy=SimpleNamespace(reduce_boolean_decision=lambda decision, all=True: decision),
    )


def test_early_stopping_waits_for_min_steps_then_stops():
    stopper = PatientEarlyStopping(monitor="val_cer", mode="min", patience=2, min_steps=100)
    trainers = [fake_trainer(step, 1.0) for step in (10, 20, 30, 40)]
    for trainer in trainers:  # CER stuck at 100% on the blank plateau: no stop yet
        stopper._run_early_stopping_check(trainer)
        assert not trainer.should_stop
    late = [fake_trainer(step, 0.5) for step in (100, 110, 120)]
    for trainer in late:
        stopper._run_early_stopping_check(trainer)
    assert [t.should_stop for t in late] == [False, False, True]
