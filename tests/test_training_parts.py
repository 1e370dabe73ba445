"""Augmentation and the plateau-aware early stopping, tested without a full training run."""

from types import SimpleNamespace

import pytest
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


def fake_trainer(step: int, loss: float) -> SimpleNamespace:
    return SimpleNamespace(
        callback_metrics={"val_loss": torch.tensor(loss)},
        global_step=step,
        should_stop=False,
        sanity_checking=False,
    )


def run_stopper(stopper, points, holding_until: int = 0):  # type: ignore[no-untyped-def]
    module = SimpleNamespace(holding=lambda: False)
    stops = []
    for step, loss in points:
        module.holding = lambda step=step: step < holding_until
        trainer = fake_trainer(step, loss)
        stopper.on_validation_end(trainer, module)
        stops.append(trainer.should_stop)
    return stops


def test_early_stopping_counts_steps_without_a_better_loss():
    stopper = PatientEarlyStopping(patience=100)
    # improves until step 40, then flat: the stop comes at the first check 100 steps after step 40
    points = [(10, 3.0), (20, 2.0), (40, 1.0), (80, 1.0), (130, 0.995), (140, 1.0)]
    assert run_stopper(stopper, points) == [False, False, False, False, False, True]


def test_early_stopping_waits_while_holding_and_ignores_tiny_gains():
    stopper = PatientEarlyStopping(patience=100, min_delta=0.02)
    # on the blank plateau (holding up to step 300) nothing counts; after it, a 1% gain is no improvement
    points = [(100, 3.0), (200, 3.0), (300, 3.0), (350, 2.98), (399, 2.96), (400, 2.95)]
    assert run_stopper(stopper, points, holding_until=301) == [False] * 5 + [True]
    assert stopper.best_step == 300


def test_early_stopping_state_survives_a_resume():
    stopper = PatientEarlyStopping(patience=100)
    run_stopper(stopper, [(10, 1.0), (50, 0.5)])
    again = PatientEarlyStopping(patience=100)
    again.load_state_dict(stopper.state_dict())
    assert run_stopper(again, [(149, 0.5), (150, 0.5)]) == [False, True]


def test_tiny_absolute_gains_do_not_count_once_the_loss_is_near_zero():
    stopper = PatientEarlyStopping(patience=100)
    # 5% better each time, but less than 0.001: the model is done, so the stop comes 100 steps after 0.01
    points = [(0, 0.0100), (50, 0.0095), (100, 0.0091)]
    assert run_stopper(stopper, points) == [False, False, True]


def test_learning_rate_halves_after_plateau_patience_steps_without_a_better_loss():
    from captcha_crnn.model.crnn import config_from_preset
    from captcha_crnn.training.system import CRNNSystem

    config = config_from_preset("nano", 11, 32).to_dict()
    system = CRNNSystem(config, "0123456789", {"height": 32}, lr=1e-3, plateau_patience=200, hold_steps=0)
    optimiser = system.configure_optimizers()
    system._trainer = SimpleNamespace(optimizers=[optimiser], global_step=0, sanity_checking=False)
    system.left_plateau = True
    lrs = []
    for step, loss in [(0, 1.0), (100, 0.5), (200, 0.5), (300, 0.499), (301, 0.499), (500, 0.499)]:
        system._trainer.global_step = step
        system._halve_lr_on_plateau(loss)
        lrs.append(optimiser.param_groups[0]["lr"])
    assert lrs == [1e-3, 1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4]


def test_fixed_schedule_warms_up_then_falls_on_a_cosine_to_zero_and_ignores_plateaus():
    from captcha_crnn.model.crnn import config_from_preset
    from captcha_crnn.training.system import CRNNSystem

    config = config_from_preset("nano", 11, 32).to_dict()
    system = CRNNSystem(config, "0123456789", {"height": 32}, lr=1e-3, warmup_steps=100, fixed_steps=395)
    optimiser = system.configure_optimizers()
    trainer = SimpleNamespace(
        optimizers=[optimiser],
        global_step=0,
        num_training_batches=8,
        max_epochs=200,
        should_stop=False,
        world_size=1,
    )
    system._trainer = trainer
    system.on_train_start()
    assert (system.fixed_epochs, system.total_steps) == (50, 400)  # 395 steps rounded up to whole epochs
    validated = []  # about 20 validations, one of them after the last epoch, whose weights are kept
    for epoch in range(50):
        trainer.current_epoch = epoch
        system.on_train_epoch_start()
        if (epoch + 1) % trainer.check_val_every_n_epoch == 0:  # Lightning's rule
            validated.append(epoch + 1)
    assert validated == [*range(3, 49, 3), 50]
    # stopped early (--max-time) in an epoch that would not validate: it validates, so its weights are saved
    trainer.current_epoch, trainer.global_step, trainer.should_stop = 10, 88, True
    system.on_train_epoch_start()
    assert trainer.check_val_every_n_epoch == 3
    system.on_train_batch_end(None, None, 0)
    assert trainer.check_val_every_n_epoch == 1
    trainer.should_stop = False
    lrs = {}
    for step in (0, 49, 100, 250, 400):
        trainer.global_step = step
        system.on_train_batch_start(None, 0)
        lrs[step] = optimiser.param_groups[0]["lr"]
    assert lrs[0] == 1e-5 and lrs[49] == 5e-4 and lrs[100] == 1e-3
    assert abs(lrs[250] - 5e-4) < 1e-12 and lrs[400] == 0.0
    trainer.global_step = 300
    system.on_train_batch_start(None, 0)
    lr = optimiser.param_groups[0]["lr"]
    system.left_plateau, system.best_loss, system.best_step = True, 1.0, 0
    system._halve_lr_on_plateau(10.0)  # 300 steps without a better loss: the plateau schedule would halve
    assert optimiser.param_groups[0]["lr"] == lr > 0
    trainer.current_epoch = 48
    system.on_train_epoch_end()
    assert not trainer.should_stop
    trainer.current_epoch = 49
    system.on_train_epoch_end()
    assert trainer.should_stop
    # max_epochs ends it sooner, and a run shorter than 4x the warm-up warms up over its first quarter
    trainer.max_epochs = 5
    system.on_train_start()
    assert system.total_steps == 40
    trainer.global_step = 10
    system.on_train_batch_start(None, 0)
    assert optimiser.param_groups[0]["lr"] == 1e-3
    # two processes take two batches a step: half the steps, the same images
    trainer.max_epochs, trainer.world_size, trainer.num_training_batches = 200, 2, 4
    system.on_train_start()
    assert (system.fixed_epochs, system.total_steps) == (50, 200)


def test_width_buckets_cover_every_image_once_in_batches_of_similar_width():
    from captcha_crnn.training.datamodule import WidthBuckets

    widths = [32 + 4 * (i * 37 % 97) for i in range(1000)]
    sampler = WidthBuckets(widths, batch_size=16, seed=3, pool=10)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 63
    assert sorted(i for b in batches for i in b) == list(range(1000))
    # Sorted within pools of 160: a batch spans a small part of the 32..416 range, a random one nearly all.
    spans = sorted(max(widths[i] for i in b) - min(widths[i] for i in b) for b in batches)
    assert spans[len(spans) // 2] <= 40
    sampler.set_epoch(1)
    assert list(sampler) != batches  # a new order each epoch
    sampler.set_epoch(0)
    assert list(sampler) == batches  # and the same order for the same epoch


def test_width_buckets_split_batches_between_processes_evenly():
    from captcha_crnn.training.datamodule import WidthBuckets

    widths = list(range(100))
    ranks = [list(WidthBuckets(widths, 8, seed=1, rank=r, world_size=2)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 6
    assert not {i for b in ranks[0] for i in b} & {i for b in ranks[1] for i in b}


@pytest.mark.parametrize("count", [1, 3, 20])
def test_width_buckets_give_every_process_a_batch_when_there_are_fewer_batches_than_processes(count):
    """A few labels over two processes (one batch's worth): each process still trains on a share, or
    one process would wait forever for the other's gradients."""
    from captcha_crnn.training.datamodule import WidthBuckets

    widths = [40 + 7 * i for i in range(count)]
    ranks = [WidthBuckets(widths, 32, seed=1, rank=r, world_size=2) for r in (0, 1)]
    batches = [list(sampler) for sampler in ranks]
    assert [len(b) for b in batches] == [len(s) for s in ranks] == [1, 1]
    assert all(batch[0] for batch in batches)
    assert {i for b in batches for i in b[0]} == set(range(count))
