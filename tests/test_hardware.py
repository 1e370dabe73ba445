"""How `train` uses the machine (training/hardware.py): processes, strategy and precision, and why."""

from __future__ import annotations

import threading

import pytest

from captcha_crnn.options import TrainOptions
from captcha_crnn.training import hardware


@pytest.fixture
def two_core_cpu(monkeypatch):
    """A Linux machine with 2 cores, no GPU, bfloat16 units, and no other threads in this process."""
    monkeypatch.setattr(hardware, "_on_cpu", lambda opts: opts.accelerator in ("auto", "cpu"))
    monkeypatch.setattr(hardware.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(hardware.sys, "platform", "linux")
    monkeypatch.setattr(hardware.threading, "active_count", lambda: 1)
    monkeypatch.setattr(hardware, "cpu_has_bf16", lambda: True)
    monkeypatch.delenv("WORLD_SIZE", raising=False)


def opts(**kw) -> TrainOptions:
    return TrainOptions(data=None, **kw)


def test_default_on_a_cpu_forks_two_single_thread_processes_in_bf16(two_core_cpu) -> None:
    hw = hardware.choose(opts())
    assert (hw.devices, hw.strategy, hw.precision) == (2, "ddp_fork", "bf16-mixed")
    assert hw.reason.startswith("2 processes of 1 thread")


def test_more_cores_give_each_process_more_threads_not_more_processes(two_core_cpu, monkeypatch) -> None:
    monkeypatch.setattr(hardware.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    hw = hardware.choose(opts())
    assert hw.devices == 2 and "4 threads" in hw.reason


@pytest.mark.parametrize(
    "change, why",
    [
        (lambda m: m.setattr(hardware.threading, "active_count", lambda: 3), "other threads"),
        (lambda m: m.setattr(hardware.sys, "platform", "darwin"), "Linux-only"),
        (lambda m: m.setattr(hardware.os, "sched_getaffinity", lambda pid: {0}, raising=False), "1 CPU core"),
    ],
)
def test_one_process_where_a_fork_is_unsafe_or_useless(two_core_cpu, monkeypatch, change, why) -> None:
    change(monkeypatch)
    hw = hardware.choose(opts())
    assert (hw.devices, hw.strategy) == (1, "auto")
    assert why in hw.reason


def test_options_decide_when_given(two_core_cpu, monkeypatch) -> None:
    assert (hardware.choose(opts(devices=1)).devices, hardware.choose(opts(devices=1)).strategy) == (
        1,
        "auto",
    )
    explicit = hardware.choose(opts(devices=2))
    assert (explicit.devices, explicit.strategy) == (2, "ddp")  # started anew: works on every platform
    assert hardware.choose(opts(precision="32")).precision == "32-true"
    monkeypatch.setattr(hardware, "cpu_has_bf16", lambda: False)
    assert hardware.choose(opts()).precision == "32-true"
    assert hardware.choose(opts(precision="bf16")).precision == "bf16-mixed"


def test_a_process_started_by_a_launcher_keeps_its_world(two_core_cpu, monkeypatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    hw = hardware.choose(opts(devices=2))
    assert hw.strategy == "ddp"


def test_this_test_process_sees_its_own_threads() -> None:
    """The guard reads the real thread count: a helper thread alive makes it choose one process."""
    stop = threading.Event()
    helper = threading.Thread(target=stop.wait)
    helper.start()
    try:
        assert threading.active_count() > 1
        reason = hardware._cpu_processes(opts(accelerator="cpu"))[1]
        assert "other threads" in reason or "core" in reason
    finally:
        stop.set()
        helper.join()
