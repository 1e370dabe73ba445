"""Pre-training throughput: images per second through a training step, today's way and the stage-4 way.

    python benchmarks/pretrain_speed.py [--baseline REF]   # writes results/pretrain_speed.json, BENCHMARKS.md

The same model (`nano`, colour, height 32) and the same images (the general recipe, aspect ratio kept)
three ways, each a few hundred optimiser steps of batch 128 in a Lightning trainer (augmentation and the
weight average included), timed from the first step after warm-up to the last:
- `stream` as of REF (default 48b2dc5, checked out in a temporary git worktree and imported from there):
  images drawn afresh by a DataLoader worker while the network trains, in random batches;
- `stream` today: the same, from this tree;
- `rendered`: the stage's images drawn once beforehand (`scripts/pretrain.py render`) and held in memory,
  in width-bucketed batches (datamodule.WidthBuckets). Drawing them cost ~4 ms an image on one core, once.
Beside them, the machine's float32 matrix-product rate on 2 threads (a roofline) and each way's share of
it, counting the network's forward FLOPs x 3 for forward and backward.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

STEPS, WARMUP, BATCH = 115, 15, 128

# Run in a fresh interpreter with `src` first on sys.path, so each way imports its own commit's code.
WORKER = textwrap.dedent(
    """
    import json, random, sys, time
    sys.path.insert(0, sys.argv[1])
    import lightning as L, numpy as np, torch
    from captcha_crnn.data import general
    from captcha_crnn.data.images import InputPolicy
    from captcha_crnn.data.synthetic import Style
    from captcha_crnn.data.tokenizer import CTCTokenizer
    from captcha_crnn.model.crnn import config_from_preset
    from captcha_crnn.training.datamodule import CaptchaDataModule, ImageSet, ScannedImage, SyntheticStream
    from captcha_crnn.training.system import CRNNSystem
    from captcha_crnn.data.labels import LabelledImage
    from captcha_crnn.data.images import open_image, to_pixels

    way, steps, warmup, batch, rendered = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
    torch.set_num_threads(2)
    style = Style(charset=general.CHARSET, length=(1, 10), width=(80, 400), height=32, recipe="general")
    policy = InputPolicy(32, 16, 1024, 4, 3, 1.0)
    tokenizer = CTCTokenizer(general.CHARSET)
    config = config_from_preset("nano", len(general.CHARSET) + 1, 32, in_channels=3)
    if way == "stream":
        train = SyntheticStream(style, steps * batch, tokenizer, policy, seed=1)
        workers = 1
    else:
        import csv
        from pathlib import Path
        folder = Path(rendered)
        rows = list(csv.reader((folder / "labels.csv").open()))[: steps * batch]
        scanned = []
        for name, label in rows:
            pixels = to_pixels(open_image(folder / name))
            scanned.append(ScannedImage(LabelledImage(folder / name, label), (pixels.shape[1], pixels.shape[0]), pixels))
        train, workers = ImageSet(scanned, tokenizer, policy), 0

    class Clock(L.Callback):
        def __init__(self):
            self.marks, self.images, self.flops_width = [], 0, 0
        def on_train_batch_start(self, trainer, module, batch, i):
            if i == warmup:
                self.start = time.perf_counter()
            if i >= warmup:
                self.images += batch["images"].shape[0]
                self.flops_width += batch["images"].shape[0] * batch["images"].shape[3]
        def on_train_batch_end(self, trainer, module, outputs, batch, i):
            self.end = time.perf_counter()

    clock = Clock()
    system = CRNNSystem(config.to_dict(), general.CHARSET, policy.to_dict(), lr=1e-3)
    dm = CaptchaDataModule(train, None, policy, batch, seed=1, workers=workers)
    trainer = L.Trainer(max_steps=steps, limit_val_batches=0, callbacks=[clock], logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, accelerator="cpu", devices=1, gradient_clip_val=5.0)
    trainer.fit(system, datamodule=dm)
    seconds = clock.end - clock.start
    print(json.dumps({"images_per_s": clock.images / seconds, "images": clock.images, "seconds": seconds,
                      "mean_padded_width": clock.flops_width / clock.images}))
    """
)


def step_flops(width: float) -> float:
    """Forward FLOPs of nano on one 32 x `width` colour image, x 3 for forward and backward."""
    from inference import model_flops

    from captcha_crnn.data import general
    from captcha_crnn.model.crnn import config_from_preset

    config = config_from_preset("nano", len(general.CHARSET) + 1, 32, in_channels=3).to_dict()
    return 3 * model_flops(config, 32, round(width))


def run(src: Path, way: str, rendered: Path) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(WORKER)
    out = subprocess.run(
        [sys.executable, f.name, str(src), way, str(STEPS), str(WARMUP), str(BATCH), str(rendered)],
        capture_output=True,
        text=True,
    )
    Path(f.name).unlink()
    if out.returncode:
        sys.exit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    import report
    from accuracy import machine
    from common import worktree
    from inference import matmul_gflops

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", default="48b2dc5", help="the commit today's way is compared with")
    parser.add_argument("--rendered", type=Path, default=ROOT / "runs" / "general-4" / "shards" / "train")
    args = parser.parse_args()
    if not (args.rendered / "labels.csv").is_file():
        sys.exit(f"{args.rendered}: no rendered images; run `python scripts/pretrain.py render` first")
    import torch

    torch.set_num_threads(2)
    gflops = matmul_gflops()
    results: dict = {
        "machine": machine(),
        "command": "python benchmarks/pretrain_speed.py",
        "baseline": args.baseline,
        "matmul_gflops": round(gflops, 1),
        "steps": STEPS - WARMUP,
        "batch": BATCH,
        "ways": {},
    }
    with worktree(args.baseline) as tree:
        ways = [
            (f"stream ({args.baseline})", tree / "src", "stream"),
            ("stream (this tree)", ROOT / "src", "stream"),
            ("rendered, width-bucketed (this tree)", ROOT / "src", "rendered"),
        ]
        for name, src, way in ways:
            r = run(src, way, args.rendered)
            r["roofline_share"] = r["images_per_s"] * step_flops(r["mean_padded_width"]) / (gflops * 1e9)
            results["ways"][name] = r
            print(name, json.dumps(r), flush=True)
    report.save("pretrain_speed", results)
    print(f"wrote {report.write_report()}")


if __name__ == "__main__":
    main()
