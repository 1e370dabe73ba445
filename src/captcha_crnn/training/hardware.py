"""How `train` uses the machine: how many processes, which Lightning strategy, which precision, and why.

On a CPU the network is small enough that two threads share each convolution poorly: two processes of
one thread each (data-parallel, gloo), each with a batch of `batch_size`, with the network under
bfloat16 autocast where the CPU has bfloat16 units, train ~1.9x the images per second of one process on
both cores (benchmarks/train_speed.py, docs/accuracy.md). The processes are forked from this one, so
they share the images already read and work from the Python API too; a fork is safe only from a
process without other threads (a web server's, a notebook's), so those train in one process.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from dataclasses import dataclass

from captcha_crnn.options import TrainOptions

PROCESSES = 2  # on a CPU: more would multiply the batch; threads per process take the other cores


@dataclass(frozen=True)
class Hardware:
    accelerator: str
    devices: int | str
    strategy: str
    precision: str  # Lightning's: "32-true" or "bf16-mixed"
    reason: str  # run.json's choices["hardware"]


def choose(opts: TrainOptions) -> Hardware:
    """The processes and precision for this run: what the options say, else what this machine runs fastest."""
    precision, why_precision = _precision(opts)
    if opts.devices is not None or os.environ.get("WORLD_SIZE", "1") != "1":
        devices = opts.devices if opts.devices is not None else 1
        count = int(devices) if str(devices).isdigit() else 1
        distributed = count * opts.num_nodes > 1 or os.environ.get("WORLD_SIZE", "1") != "1"
        strategy = "ddp" if distributed and opts.strategy == "auto" else opts.strategy
        return Hardware(
            opts.accelerator, devices, strategy, precision, f"devices {devices} (--devices); {why_precision}"
        )
    processes, why = _cpu_processes(opts)
    strategy = "ddp_fork" if processes > 1 and opts.strategy == "auto" else opts.strategy
    return Hardware(opts.accelerator, processes, strategy, precision, f"{why}; {why_precision}")


def _on_cpu(opts: TrainOptions) -> bool:
    if opts.accelerator == "cpu":
        return True
    if opts.accelerator != "auto":
        return False
    import torch

    return not torch.cuda.is_available() and not torch.backends.mps.is_available()


def _cpu_processes(opts: TrainOptions) -> tuple[int, str]:
    if not _on_cpu(opts):
        return 1, "1 process on the GPU"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cores < PROCESSES:
        return 1, f"1 process: {cores} CPU core"
    if sys.platform != "linux" or "fork" not in multiprocessing.get_all_start_methods():
        return (
            1,
            f"1 process of {cores} threads: forking processes is Linux-only here (--devices 2 starts them anew)",
        )
    if threading.active_count() > 1:
        return 1, f"1 process of {cores} threads: this process has other threads, which a fork would break"
    threads = cores // PROCESSES
    return PROCESSES, (
        f"{PROCESSES} processes of {threads} thread{'s' if threads > 1 else ''} on the CPU, a batch of "
        f"{opts.batch_size} each (faster than one process on all cores; --devices 1 for one)"
    )


def _precision(opts: TrainOptions) -> tuple[str, str]:
    if opts.precision != "auto":
        return (
            "bf16-mixed" if opts.precision == "bf16" else "32-true"
        ), f"precision {opts.precision} (--precision)"
    if not _on_cpu(opts):
        return "32-true", "precision 32 on the GPU (--precision bf16 where it has bfloat16 units)"
    if cpu_has_bf16():
        return "bf16-mixed", "precision bf16: this CPU has bfloat16 units (--precision 32 for float32)"
    return "32-true", "precision 32: this CPU has no bfloat16 units"


def cpu_has_bf16() -> bool:
    """Whether oneDNN runs bfloat16 natively here (AVX-512 BF16 or AMX); elsewhere it is emulated, slower."""
    import torch

    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
