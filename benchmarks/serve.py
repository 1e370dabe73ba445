"""Load test of `captcha-crnn serve`: a bounded run from this process against the server in another.

    python benchmarks/serve.py [--model model.pt] [--requests 5000] [--concurrency 32] [--workers 1]
                               [--threads N] [--only plain|hostile] [--format pt|onnx]

Without --model, a default-architecture model is trained for one epoch on ../shared/data/captcha-v2
(latency depends on the architecture and input size, not on how well the weights are trained) and is
served both as model.pt (PyTorch) and exported to model.onnx (what a deployment serves). Every request
POSTs one image as the raw body to /v1/recognize on 127.0.0.1; the run stops after --requests requests.

Two mixes: "plain", every request a captcha-v2 image (200x50 PNG); "hostile", every tenth request one of
four hostile bodies in turn: a truncated PNG (expects 422), a body over the 2 MB limit (413), text sent
as an image (415) and a decompression-bomb PNG, 20000x20000 pixels in 49 kB (422). A request counts as an
error when its answer is not the expected one (a 200 with a text for an image), by kind and status: 503
queue full, 504 timeout, 500, a dropped connection. Latency percentiles are over every request.

The load generator is a small HTTP/1.1 client on asyncio streams, one keep-alive connection per
concurrent request: a full client library (httpx) costs more CPU per request than the server, and the two
share the same 2 cores. Results go to benchmarks/results/serve.json and BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import report  # noqa: E402  (benchmarks/report.py)
from common import train_default_model  # noqa: E402

DATA = HERE.parent.parent / "shared" / "data" / "captcha-v2"
MAX_BODY = 2 * 1024 * 1024  # serve's default --max-body-mb 2
HOSTILE_EVERY = 10  # one request in ten is hostile in the "hostile" mix


@dataclass(frozen=True)
class Payload:
    kind: str
    request: bytes  # the whole HTTP request
    expect: int  # the status a correct server answers


def http_request(body: bytes, content_type: str = "image/png") -> bytes:
    head = (
        f"POST /v1/recognize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def bomb_png(side: int = 20_000) -> bytes:
    """A valid 1-bit grey PNG of side x side pixels, all black: the header claims 400 megapixels."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + tag + data + zlib.crc32(tag + data).to_bytes(4, "big")

    header = side.to_bytes(4, "big") * 2 + bytes([1, 0, 0, 0, 0])  # bit depth 1, grey
    row = b"\x00" + bytes((side + 7) // 8)
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def payloads(images: list[bytes], hostile: bool) -> list[Payload]:
    """The requests of one cycle: HOSTILE_EVERY - 1 images then one hostile body (or only images)."""
    good = [Payload("image", http_request(b), 200) for b in images]
    if not hostile:
        return good
    bad = [
        Payload("truncated", http_request(images[0][: len(images[0]) // 2]), 422),
        Payload("oversized", http_request(b"\x89PNG\r\n\x1a\n" + bytes(MAX_BODY + 1024)), 413),
        Payload("wrong-type", http_request(b"hello, not an image\n" * 20, "text/plain"), 415),
        Payload("bomb", http_request(bomb_png()), 422),
    ]
    cycle: list[Payload] = []
    for i, p in enumerate(good):
        cycle.append(p)
        if i % (HOSTILE_EVERY - 1) == HOSTILE_EVERY - 2:
            cycle.append(bad[(i // (HOSTILE_EVERY - 1)) % len(bad)])
    return cycle


async def exchange(
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], request: bytes
) -> tuple[int, bytes, bool]:
    """Send one request, read one response: (status, body, connection still usable)."""
    reader, writer = conn
    writer.write(request)
    with contextlib.suppress(ConnectionError):  # the server may answer 413 and close before reading all
        await writer.drain()
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in head[1:] if ":" in h)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, body, headers.get("connection", "").lower() != "close"


async def load(
    port: int, cycle: list[Payload], total: int, concurrency: int
) -> tuple[list[float], collections.Counter[str], collections.Counter[str]]:
    """Latencies, the count of every request by kind, and every unexpected answer by kind and status."""
    latencies: list[float] = []
    kinds: collections.Counter[str] = collections.Counter()
    errors: collections.Counter[str] = collections.Counter()
    counter = iter(range(total))

    async def worker() -> None:
        conn = None
        for i in counter:
            payload = cycle[i % len(cycle)]
            kinds[payload.kind] += 1
            start = time.perf_counter()
            try:
                conn = conn or await asyncio.open_connection("127.0.0.1", port)
                status, body, keep = await exchange(conn, payload.request)
                ok = status == payload.expect and (status != 200 or b'"text"' in body)
                outcome = "ok" if ok else str(status)
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
                outcome, keep = type(exc).__name__, False
            latencies.append(time.perf_counter() - start)
            if outcome != "ok":
                errors[f"{payload.kind}: {outcome}"] += 1
            if not keep and conn is not None:
                conn[1].close()
                conn = None
        if conn is not None:
            conn[1].close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, kinds, errors


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_model(tmp: Path) -> Path:
    from captcha_crnn.data.labels import collect, split_validation

    train, val = split_validation(collect(DATA), 0.1, seed=42)
    return train_default_model(train, val, tmp, ["--max-epochs", "1"])


def measure(model: Path, mix: str, images: list[bytes], args: argparse.Namespace) -> dict:
    port = free_port()
    command = [sys.executable, "-m", "captcha_crnn", "serve", str(model), "--port", str(port)]
    command += ["--workers", str(args.workers)]
    command += ["--threads", str(args.threads)] if args.threads else []
    server = subprocess.Popen(command)
    try:
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        cycle = payloads(images, hostile=mix == "hostile")
        asyncio.run(load(port, cycle, 300, args.concurrency))  # warm-up
        start = time.perf_counter()
        latencies, kinds, errors = asyncio.run(load(port, cycle, args.requests, args.concurrency))
        wall = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(timeout=20)
    latencies.sort()
    return {
        "model": model.suffix.lstrip("."),
        "mix": mix,
        "requests": args.requests,
        "requests_by_kind": dict(kinds),
        "errors": sum(errors.values()),
        "errors_by_kind": dict(errors),
        "requests_per_second": round(args.requests / wall, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 2),
        "p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 2),
        "wall_seconds": round(wall, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", type=Path, help="a model.pt or model.onnx (default: train one, serve both)"
    )
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, help="inference threads per worker (default: serve's)")
    parser.add_argument("--only", choices=["plain", "hostile"], action="append", help="one mix only")
    args = parser.parse_args()
    images = [p.read_bytes() for p in sorted(DATA.glob("*.png"))[:200]]
    if not images:
        sys.exit(f"error: no images in {DATA}")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.model:
            models = [args.model]
        else:
            from captcha_crnn.export.onnx import export

            pt = default_model(Path(tmp))
            export(pt, Path(tmp) / "model.onnx")
            models = [pt, Path(tmp) / "model.onnx"]
        for model in models:
            for mix in args.only or ["plain", "hostile"]:
                result = measure(model, mix, images, args)
                print(json.dumps(result), flush=True)
                runs.append(result)
    out = {
        "concurrency": args.concurrency,
        "workers": args.workers,
        "threads": args.threads or "default",
        "runs": runs,
        "date": time.strftime("%Y-%m-%d"),
    }
    report.save("serve", out)


if __name__ == "__main__":
    main()
