"""Load test of `captcha-crnn serve`: a bounded run from this process against the server in another.

    python benchmarks/serve.py [--model model.pt] [--requests 5000] [--concurrency 32] [--workers 1]
                               [--threads N]

Without --model, a default-architecture model is trained for one epoch on ../shared/data/captcha-v2:
latency depends on the architecture and input size, not on how well the weights are trained. Every
request POSTs one captcha-v2 image (200x50 PNG) as the raw body to /v1/recognize on 127.0.0.1. The run
stops by itself after --requests requests; a request answered other than 200 (503 queue full, 504
timeout, ...) counts as an error, by status. Results go to benchmarks/results/serve.json and BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import report  # noqa: E402  (benchmarks/report.py)
from common import train_default_model  # noqa: E402

DATA = HERE.parent.parent / "shared" / "data" / "captcha-v2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_model(tmp: Path) -> Path:
    from captcha_crnn.data.labels import collect, split_validation

    train, val = split_validation(collect(DATA), 0.1, seed=42)
    return train_default_model(train, val, tmp, ["--max-epochs", "1"])


async def load(
    url: str, payloads: list[bytes], total: int, concurrency: int
) -> tuple[list[float], collections.Counter[str]]:
    """Latencies, and the count of every answer other than a 200 with a text, by status."""
    latencies: list[float] = []
    errors: collections.Counter[str] = collections.Counter()
    counter = iter(range(total))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def worker() -> None:
            for i in counter:
                start = time.perf_counter()
                try:
                    r = await client.post(url, content=payloads[i % len(payloads)])
                    outcome = "ok" if r.status_code == 200 and "text" in r.json() else str(r.status_code)
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                latencies.append(time.perf_counter() - start)
                if outcome != "ok":
                    errors[outcome] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, help="inference threads per worker (default: serve's)")
    args = parser.parse_args()
    payloads = [p.read_bytes() for p in sorted(DATA.glob("*.png"))[:200]]
    if not payloads:
        sys.exit(f"error: no images in {DATA}")
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or default_model(Path(tmp))
        port = free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "captcha_crnn",
                "serve",
                str(model),
                "--port",
                str(port),
                "--workers",
                str(args.workers),
                *(["--threads", str(args.threads)] if args.threads else []),
            ],
        )
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            asyncio.run(load(base + "/v1/recognize", payloads, 200, args.concurrency))  # warm-up
            start = time.perf_counter()
            latencies, errors = asyncio.run(
                load(base + "/v1/recognize", payloads, args.requests, args.concurrency)
            )
            wall = time.perf_counter() - start
        finally:
            server.terminate()
            server.wait(timeout=20)
    latencies.sort()
    result = {
        "requests": args.requests,
        "concurrency": args.concurrency,
        "workers": args.workers,
        "threads": args.threads or "default",
        "errors": sum(errors.values()),
        "errors_by_status": dict(errors),
        "requests_per_second": round(args.requests / wall, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 2),
        "p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 2),
        "wall_seconds": round(wall, 1),
        "date": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps(result))
    report.save("serve", result)


if __name__ == "__main__":
    main()
