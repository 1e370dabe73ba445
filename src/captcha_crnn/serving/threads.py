"""Threads per worker process. torch and onnxruntime each default to one thread per core, so N workers
would run N x cores threads on the same cores and slow each other down; by default each worker gets
cores / N. Imports neither torch nor onnxruntime unless the model needs it."""

from __future__ import annotations

import os
from pathlib import Path

from captcha_crnn.inference.backends import OnnxBackend, TorchBackend
from captcha_crnn.inference.recognizer import Recognizer


def available_cores() -> int:
    """Cores this process may run on (respects taskset/cgroup CPU affinity, unlike os.cpu_count)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def threads_per_worker(workers: int, cores: int | None = None, torch: bool = False) -> int:
    """workers x threads = cores, at least one thread each; for PyTorch one fewer per worker. torch's
    OpenMP threads busy-wait between operations and starve the worker's event loop on the same cores: on
    2 cores, 1 torch thread served 550 requests/s at p99 71 ms and 2 threads 430/s at p99 94 ms, while
    onnxruntime did best with both cores (1116/s against 913/s; benchmarks/serve.py)."""
    share = (cores or available_cores()) // max(1, workers)
    return max(1, share - 1 if torch else share)


def limit_threads(recognizer: Recognizer, model_path: str | Path, threads: int) -> None:
    """Run this process's inference on `threads` threads; call it in each worker process."""
    if isinstance(recognizer.backend, TorchBackend):
        import torch

        torch.set_num_threads(threads)  # process-wide: also applies to the inference thread
    elif isinstance(recognizer.backend, OnnxBackend):
        recognizer.backend = OnnxBackend(_onnx_session(model_path, threads))


def _onnx_session(model_path: str | Path, threads: int) -> object:
    """onnxruntime fixes its thread pool when a session is created, so the session is made again."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only, as in backends.load_onnx
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
