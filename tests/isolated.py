"""Run code in a fresh interpreter and check which packages it imported: what a slim (ONNX-only) install
or a quick start-up must never load."""

from __future__ import annotations

import subprocess
import sys

TORCH = ("torch", "lightning", "matplotlib")


def run_without(code: str, heavy: tuple[str, ...] = TORCH) -> str:
    """`code`'s standard output; the test fails if it fails or imported a package named in `heavy`."""
    check = (
        "\nimport sys as _sys\n"
        f"_heavy = [m for m in _sys.modules if m.split('.')[0] in {heavy!r}]\n"
        "assert not _heavy, _heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code + check], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout
