"""Train the general model that ships with the package, and package it.

    python scripts/pretrain.py render [--images 200000]      # draw the stage's images once, to disk
    python scripts/pretrain.py train [--minutes 95]           # starts, or resumes, RUN (runs/general-N)
    python scripts/pretrain.py package                        # last weights -> weights/general.*
    python scripts/pretrain.py package --average-with FILE    # their mean with FILE's (stage 12)
    python scripts/pretrain.py base FILE                      # a nano model -> weights/general-base.*
    python scripts/pretrain.py pack                           # -> .stage/, for a stage on a lent GPU
    sh scripts/gpu_stage.sh                                   # that stage, there (its header says how)

Stage 4 trained the reader (the `small` preset, ~5x nano's parameters) from a random start on a 2-core
CPU. Earlier stages drew every image afresh in DataLoader workers, which took the cores the network
needed: `render` draws the recipe's images once (both cores, ~500 images/s) at the model's input height,
adds the real sources that pre-training may use (`ALLOWED`, MIT; a fixed slice of each held back for
validation), and `train` reads them from memory, each image seen once an epoch under random augmentation,
in width-bucketed batches (datamodule.WidthBuckets). `package` may run while training goes on; it
writes `general.pt` (weights, charset, recipe, seed and the stages before it in its metadata),
`general.onnx` for the slim install, and `general.json` with both files' SHA-256, which loading checks.

Stage 5 continued from stage 4's shipped weights on newly drawn images of a wider recipe (tight crops,
frames, small text) and shipped (docs/accuracy.md). Stage 6 continued from stage 5's with the libraries'
looks added (data/library_looks.py: Kaptcha, Gregwar, django-simple-captcha, svg-captcha) and shipped.
Stage 7 continued from stage 6's on the same recipe with new images and shipped. Stage 8 read at height 48
(`OPTIONS["height"]`), from stage 7's weights with the recurrent layer's inputs resized (model/init.py),
3 epochs of new images, and shipped. Stage 9 added glyphs with hard edges to
the recipe (general.ALIASED_SHARE of the looks' images) and shipped; stage 10 drew more of them (and more
Hershey faces) and shipped. Stage 11 added looks the issue's kept-back sites are described with: JPEG
artefacts, pastel glyphs, short thin lines, thick curves, white-to-grey and patterned backgrounds
(general.JPEG_SHARE and the shares beside it), and shipped. Stage 12 trained on the same recipe with new
images; it shipped as the mean of its weights and stage 11's (`package --average-with` a copy of the
shipped general.pt), which read the held-out sets better than either. Stage 13 did the same again and
shipped the same way (its own weights read tii-digits and securimage worse than stage 12's; the mean
read every held-out row as well or better). Stage 14 halved the peak LR (5e-4) and shipped the same way:
its own weights already read tii-digits better, and the mean read every held-out row with the
restriction better. Stage 15 halved it again (2.5e-4) and did not ship: both candidates read tii-digits
and captcha-v2 worse. Stage 16 goes back to 5e-4 and draws half its images in ~330 faces of ~55 more
free font families (general.MORE_FONT_PACKAGES: sans, serif, mono, handwritten, display, pixel), where
stages 4-15 had ~20 families: the variety of faces real sites draw in. It shipped as the mean with stage
14's (its own weights read tii-digits 8.5 points better and securimage 2.7 worse; the mean kept
securimage). Stage 17 kept that recipe for 2 epochs in float32 (a CPU without bfloat16 units, 52-58
minutes an epoch) and did not ship: neither its weights nor their mean with stage 16's read the held-out
sets better (docs/accuracy.md). A next stage (this script as it stands, not yet run) keeps that recipe: its `init`
stays the shipped general.pt, a new RUN and SEED (new images and a new validation set), render again,
package both ways (plain and averaged with its init), and append this stage's own figures to STAGES
(general.json's "trained" holds the totals: subtract the stages before). A stage ships only if the
held-out rows of benchmarks/general.py improve.
Timing: stages 4-15 ran on a 2-core CPU with bfloat16 units (an epoch of 200,000 images at height 48 in
~23-25 minutes). On a CPU without them `train` runs in float32 and the first epoch had not ended after 38
minutes (session 16) and stage 17's took 52-58 minutes: there, give `train --epochs 2 --minutes 120`
(render takes ~11 minutes and loading ~4 more), or run the stage where a GPU is lent. Stage 16's CPU
(session 17, bfloat16 units) ran an epoch in 14-15 minutes.
Stage 3's nano weights ship as `general-base` (`base`), which `train --init general` starts from.

On a lent GPU (issue 25; the device tool carries 64 MiB of working tree and not ../shared) the stage runs
from `pack`'s .stage/: the recipe's fonts cut to ASCII (general.FONT_ROOT points there), the allowed real
sources and the wheels that machine lacks. scripts/gpu_stage.sh draws there with all its cores (`render
--packed`), trains under bfloat16 (`train --epochs --precision`), and returns what `package` needs here.

The fonts come from Debian packages and OpenCV, which the shipped package does not need:
    apt-get install fonts-liberation fonts-freefont-ttf fonts-roboto-unhinted fonts-urw-base35
    apt-get install --no-install-recommends $(python -c "from captcha_crnn.data import general; print(general.MORE_FONT_PACKAGES)")
    pip install 'opencv-python-headless<5'   # its Hershey stroke fonts (OpenCV 5 draws others)
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from captcha_crnn.data import general, library_looks
from captcha_crnn.data.synthetic import Style
from captcha_crnn.options import TrainOptions

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT.parent / "shared" / "data" / "real"
# The real sources pre-training may use (issue 25: MIT licensed). securimage and henan-digits are held out
# for zero-shot checks; captcha-v2, tii-digits, cryptowin-math and the telegram sets never train it.
ALLOWED = ("really-simple", "pku-elective")
HELD_BACK = 500  # images of each allowed source kept for validation, by a stable hash of the file name
REAL_REPEAT = 2  # each allowed real image appears this often per epoch (they are ~6% of the images)
STAGE = 18  # stages 15 and 17 ran and did not ship (docs/accuracy.md): STAGES holds the shipped ones
RUN = ROOT / "runs" / "general-18"
SHARDS = RUN / "shards"
PACKED = ROOT / ".stage"  # git-ignored: what `pack` makes for a lent GPU (scripts/gpu_stage.sh)
WEIGHTS = ROOT / "src" / "captcha_crnn" / "weights"
SEED = 20261220
VAL_IMAGES = 2000  # generated validation images, beside the held-back real ones
STYLE = Style(charset=general.CHARSET, length=(1, 10), width=(80, 400), height=32, recipe="general")
OPTIONS = {  # recorded in the model's metadata beside the recipe
    "preset": "small",
    "batch_size": 128,
    "lr": 5e-4,  # stage 4 started at 2e-3 from random weights, stages 5-13 continued at 1e-3; stage 14's
    # half read the held-out sets better; stage 15's quarter did not ship (docs/accuracy.md, stages 14-15)
    "channels": 3,
    "height": 48,  # since stage 8 (stages 4-7: 32)
    "stretch": 1.0,  # aspect ratio kept: the recipe's widths already give 10 characters their frames
    "crop": "none",  # the recipe's images are read whole, as the reader reads a user's
    "schedule": "fixed",  # a cosine to zero over the stage's steps: the time budget is known in advance
    "epochs": 3,  # with bfloat16 units ~15 min an epoch; without, 52-58 min: give `train --epochs 2`
    "init": "src/captcha_crnn/weights/general.pt",  # the last shipped stage
}
# The stages these weights continued from, oldest first, as each one's general.json recorded it;
# `package` adds them up ("trained" holds totals over every stage, as in the nano stages 1-3).
STAGES = [
    {
        "stage": 4,
        "device": "2 CPU cores",
        "seed": 20261206,
        "epochs": 5,
        "images": 1128050,
        "minutes": 116.7,
        "init": None,
        "recipe": "data/general.py at commit 449055d: no crops, frames or small text; lr 2e-3",
    },
    {
        "stage": 5,
        "device": "2 CPU cores",
        "seed": 20261207,
        "epochs": 4,
        "images": 902440,
        "minutes": 65.8,
        "init": "stage 4's shipped weights",
        "recipe": "data/general.py at commit 135e442: crops, frames, small text; no library looks; lr 1e-3",
    },
    {
        "stage": 6,
        "device": "2 CPU cores",
        "seed": 20261208,
        "epochs": 4,
        "images": 902440,
        "minutes": 64.6,
        "init": "stage 5's shipped weights",
        "recipe": "data/general.py at commit 2521417: stage 5's plus library looks (15%); lr 1e-3",
    },
    {
        "stage": 7,
        "device": "2 CPU cores (2 processes of 1 thread, bf16 autocast)",
        "seed": 20261209,
        "epochs": 4,
        "images": 902440,
        "minutes": 53.8,
        "init": "stage 6's shipped weights",
        "recipe": "stage 6's (data/general.py unchanged since 2521417), new images; batch 2 x 64; lr 1e-3",
    },
    {
        "stage": 8,
        "device": "2 CPU cores (2 processes of 1 thread, bf16 autocast)",
        "seed": 20261210,
        "epochs": 3,
        "images": 676830,
        "minutes": 77.0,
        "init": "stage 7's shipped weights, the recurrent layer's inputs resized from height 32 to 48",
        "recipe": "stage 7's, new images, read at height 48 (was 32); batch 2 x 64; lr 1e-3",
    },
    {
        "stage": 9,
        "device": "2 CPU cores (2 processes of 1 thread, bf16 autocast)",
        "seed": 20261211,
        "epochs": 3,
        "images": 676830,
        "minutes": 87.0,
        "init": "stage 8's shipped weights",
        "recipe": "stage 8's plus glyphs with hard edges (a quarter of the looks' images), new images",
    },
    {
        "stage": 10,
        "device": "2 CPU cores (2 processes of 1 thread, bf16 autocast)",
        "seed": 20261212,
        "epochs": 3,
        "images": 676830,
        "minutes": 82.1,
        "init": "stage 9's shipped weights",
        "recipe": "stage 9's with hard edges on 0.4 of the looks' images (was 0.25) and Hershey faces on 0.2 "
        "(was 0.15), new images",
    },
    {
        "stage": 11,
        "device": "2 CPU cores (2 processes of 1 thread, bf16 autocast)",
        "seed": 20261213,
        "epochs": 2,
        "images": 451220,
        "minutes": 65.0,
        "init": "stage 10's shipped weights",
        "recipe": "stage 10's plus JPEG artefacts, pastel glyphs, short thin lines, thick curves, fade and "
        "patterned backgrounds (commit b8c5526), new images; 3 epochs planned, 2 trained (the schedule "
        "counted the whole batch's steps as batches)",
    },
    {
        "stage": 12,
        "device": "2 CPU cores (2 processes of 1 thread, bf16 autocast)",
        "seed": 20261214,
        "epochs": 3,
        "images": 676830,
        "minutes": 68.6,
        "init": "stage 11's shipped weights",
        "recipe": "stage 11's (data/general.py unchanged), new images; shipped as the mean of the run's "
        "weights and stage 11's (`package --average-with`)",
    },
    {
        "stage": 13,
        "device": "2 CPU cores (2 processes of 1 thread, bf16 autocast)",
        "seed": 20261215,
        "epochs": 3,
        "images": 676830,
        "minutes": 72.4,
        "init": "stage 12's shipped weights",
        "recipe": "stage 11's (data/general.py unchanged), new images; shipped as the mean of the run's "
        "weights and stage 12's (`package --average-with`), as stage 12",
    },
    {
        "stage": 14,
        "device": "2 CPU cores (2 processes of 1 thread, bf16 autocast)",
        "seed": 20261216,
        "epochs": 3,
        "images": 676830,
        "minutes": 70.3,
        "init": "stage 13's shipped weights",
        "recipe": "stage 11's (data/general.py unchanged), new images, peak LR 5e-4 (was 1e-3); shipped as "
        "the mean of the run's weights and stage 13's (`package --average-with`)",
    },
    {
        "stage": 16,
        "device": "2 CPU cores (2 processes of 1 thread, bf16 autocast)",
        "seed": 20261218,
        "epochs": 3,
        "images": 676830,
        "minutes": 43.3,
        "init": "stage 14's shipped weights (stage 15 did not ship)",
        "recipe": "stage 11's with half the images in ~330 faces of ~55 more free font families "
        "(general.more_fonts), new images, peak LR 5e-4; shipped as the mean of the run's weights and "
        "stage 14's (`package --average-with`)",
    },
]
# The reader cuts small text out before reading it (data/textbox.py), though it trains on whole images:
# the cut only changes images whose text fills a small part of them, which then read like the recipe's
# (benchmarks/text_crop.py; the held-out sets read the same either way, benchmarks/general.py --crop).
READ_CROP = True


def recipe() -> dict:
    """Everything that decides the training data, for the model's metadata (JSON types throughout). The
    epochs and the device are the run's own (its run.json): a CPU with or without bfloat16, or a GPU."""
    run = json.loads((RUN / "run" / "run.json").read_text())
    record = {
        "style": asdict(STYLE),
        "seed": SEED,
        "images": _count(SHARDS / "train"),
        "real_sources": {name: _licence(name) for name in ALLOWED},
        "real_repeat": REAL_REPEAT,
        "charsets": [[chars, weight] for chars, weight in general.CHARSETS],
        "length_weights": list(general.LENGTH_WEIGHTS),
        "library_share": general.LIBRARY_SHARE,
        "hershey_share": general.HERSHEY_SHARE,
        "fonts": [Path(f).name for f in general.fonts()] + list(general.hershey_faces()),
        "font_packages": general.FONT_PACKAGES,
        "more_fonts": [Path(f).name for f in general.more_fonts()],
        "more_font_packages": general.MORE_FONT_PACKAGES,
        "more_fonts_share": general.MORE_FONTS_SHARE,
        "options": {**OPTIONS, "epochs": run["options"]["max_epochs"]},
        "read_crop": READ_CROP,
        "stages": STAGES,
        "crop_share": general.CROP_SHARE,
        "library_looks_share": general.LIBRARY_LOOKS_SHARE,
        "library_looks": list(library_looks.LIBRARIES),
        "small_share": general.SMALL_SHARE,
        "frame_share": general.FRAME_SHARE,
        "aliased_share": general.ALIASED_SHARE,
        "jpeg_share": general.JPEG_SHARE,
        "jpeg_quality": list(general.JPEG_QUALITY),
        "segments_share": general.SEGMENTS_SHARE,
        "thick_lines_share": general.THICK_LINES_SHARE,
        "background_weights": general.BACKGROUND_WEIGHTS,
        "device": run["choices"]["hardware"],
        "script": "scripts/pretrain.py",
    }
    return json.loads(json.dumps(record))


def _licence(name: str) -> str:
    for line in (REAL / "SOURCES.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells and cells[0] == name:
            return f"{cells[1]} @ {cells[2]}, {cells[3]}"
    return "unknown"


def _count(folder: Path) -> int:
    labels = folder / "labels.csv"
    return sum(1 for _ in labels.open()) if labels.is_file() else 0


# --- render: the stage's images, once -------------------------------------------------------------------


def _draw(job: tuple[int, int, int]) -> list[tuple[bytes, str]]:
    """`count` recipe images from seed `seed`, resized to the input height, as PNG bytes with labels."""
    import io

    from PIL import Image

    from captcha_crnn.data.images import InputPolicy, to_pixels
    from captcha_crnn.data.synthetic import Renderer

    seed, count, height = job
    policy = InputPolicy(height, 4, 4096, 4, 3, 1.0)
    renderer = Renderer(STYLE, seed)
    out = []
    for _ in range(count):
        label, image = renderer.sample()
        buffer = io.BytesIO()
        Image.fromarray(policy.resize(to_pixels(image))).save(buffer, "PNG", compress_level=1)
        out.append((buffer.getvalue(), label))
    return out


def held_back(name: str, items: list) -> list:
    """The HELD_BACK images of an allowed source that pre-training never trains on (validation, and the
    benchmark's trained-on rows), chosen by a stable hash of the file name."""
    return _by_hash(name, items)[:HELD_BACK]


def _by_hash(name: str, items: list) -> list:
    return sorted(items, key=lambda i: zlib.crc32(f"{name}/{i.path.name}".encode()))


def _real(height: int, root: Path = REAL) -> tuple[list[tuple[bytes, str]], list[tuple[bytes, str]]]:
    """The allowed real sources under `root`, resized like the drawn images: (training, held back)."""
    import io

    from PIL import Image

    from captcha_crnn.data.images import InputPolicy, load_for_model
    from captcha_crnn.data.labels import collect

    policy = InputPolicy(height, 4, 4096, 4, 3, 1.0)
    train, val = [], []
    for name in ALLOWED:
        items = _by_hash(name, collect(root / name))
        for k, item in enumerate(items):
            buffer = io.BytesIO()
            Image.fromarray(load_for_model(item.path, policy)).save(buffer, "PNG", compress_level=1)
            (val if k < HELD_BACK else train).append((buffer.getvalue(), item.label))
        print(f"{name}: {len(items) - HELD_BACK} training, {HELD_BACK} held back", flush=True)
    return train, val


def _write(folder: Path, images: list[tuple[bytes, str]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "labels.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        for k, (png, label) in enumerate(images):
            name = f"{k:07d}.png"
            (folder / name).write_bytes(png)
            writer.writerow([name, label])


def _check_fonts() -> None:
    where = f" under {general.FONT_ROOT}" if str(general.FONT_ROOT) != "/" else ""
    if not general.fonts():
        sys.exit(f"no fonts for the general recipe{where}: apt-get install {general.FONT_PACKAGES}")
    if not general.more_fonts():
        sys.exit(f"no wider font families{where}: apt-get install {general.MORE_FONT_PACKAGES}")
    if not general.hershey_faces():
        sys.exit("no Hershey fonts for the general recipe: pip install 'opencv-python-headless<5'")


def render(images: int, workers: int, packed: bool = False) -> None:
    """Draw the stage's images; with `packed`, the real sources come from PACKED (a lent GPU's machine has
    no ../shared)."""
    if packed and not (PACKED / "real").is_dir():
        sys.exit(f"{PACKED}: nothing packed; run `python scripts/pretrain.py pack` where ../shared is")
    _check_fonts()
    if (SHARDS / "train" / "labels.csv").is_file():
        sys.exit(f"{SHARDS}: already rendered; remove it to draw again")
    height = OPTIONS["height"]
    chunk = 2000
    jobs = [
        (SEED * 1000 + k, min(chunk, images - k * chunk), height) for k in range(math.ceil(images / chunk))
    ]
    val_job = (SEED * 1000 + 999, VAL_IMAGES, height)  # a seed no training chunk uses (k < 999)
    assert len(jobs) < 999
    drawn: list[tuple[bytes, str]] = []
    with ProcessPoolExecutor(workers) as pool:
        for k, part in enumerate(pool.map(_draw, [val_job, *jobs])):
            if k == 0:
                val = part
            else:
                drawn += part
                print(f"drew {len(drawn)} of {images}", flush=True)
    real_train, real_val = _real(height, PACKED / "real" if packed else REAL)
    _write(SHARDS / "train", drawn + real_train * REAL_REPEAT)
    _write(SHARDS / "val", val + real_val)
    print(f"{SHARDS}: {_count(SHARDS / 'train')} training, {_count(SHARDS / 'val')} validation images")


# --- train ----------------------------------------------------------------------------------------------


def train(minutes: float, epochs: int, precision: str) -> None:
    from captcha_crnn.training import hardware
    from captcha_crnn.training.train import train as run_training

    if not (SHARDS / "train" / "labels.csv").is_file():
        sys.exit(f"{SHARDS}: nothing rendered yet; run `python scripts/pretrain.py render` first")
    resume = (RUN / "run" / "checkpoints" / "last.ckpt").is_file()
    options = dict(OPTIONS)
    options.pop("epochs")  # `epochs`: OPTIONS' unless the command line says otherwise
    # The starting weights count only for a new run (a resumed one continues from its checkpoint, and
    # train refuses --init with --resume); relative to the project, wherever this runs from.
    init = options.pop("init")
    if not resume:
        options["init"] = str(ROOT / init) if init else None
    batch = options.pop("batch_size")
    opts = TrainOptions(
        data=SHARDS / "train",
        val_dir=SHARDS / "val",
        out=RUN / "run",
        charset=general.CHARSET,
        seed=SEED,
        max_epochs=epochs,
        max_time=minutes,
        keep="last",
        precision=precision,
        lazy=False,
        workers=0,
        resume=resume,
        force=not resume,
        progress=False,
        batch_size=batch,
        **options,
    )
    # train splits the work between processes on a CPU (training/hardware.py), each with its own batch:
    # the recipe's batch is split between them, so that the LR and steps per epoch stay the earlier stages'.
    processes = int(hardware.choose(opts).devices)
    # The fixed schedule counts batches of each process's size, every process's (stage 11 planned 3 epochs
    # by steps of the whole batch, and so trained 2).
    steps = epochs * math.ceil(_count(SHARDS / "train") / (batch // processes))
    opts = replace(opts, batch_size=batch // processes, steps=steps)
    result = run_training(opts)
    metrics = result.val_metrics
    print(
        f"{result.model_path}: {result.epochs} epochs, {metrics['sequence_accuracy']:.1%} of "
        f"{metrics['count']} validation images"
    )


# --- pack: what a lent GPU needs beside the working tree ------------------------------------------------

CARRY_LIMIT = 64 * 2**20  # the device tool carries at most this: the working tree and PACKED together
# What the train extra needs that the GPU machines' image lacks (/work/.library/device/KINDS.md lists it);
# they carry as wheels for its Python, 3.12.
WHEELS = ("captcha", "rapidfuzz")
GPU_PYTHON = "3.12"


def pack() -> None:
    """PACKED/: the recipe's font files cut to the characters it draws, under the paths they have here
    (fonts/, for CAPTCHA_CRNN_FONT_ROOT: 98 MB whole, 12 MB cut); the allowed real sources' folders as
    they are (real/, 14 MB; resized, 70 MB); wheels of WHEELS (wheels/). Checked before it is moved in:
    each cut face draws the recipe's characters as before, the recipe's first images drawn with the cut
    fonts are the same bytes, and all of it fits the carry limit."""
    if str(general.FONT_ROOT) != "/":
        sys.exit(f"CAPTCHA_CRNN_FONT_ROOT is set ({general.FONT_ROOT}): pack from the installed fonts")
    _check_fonts()
    if not (REAL / "SOURCES.md").is_file():
        sys.exit(f"{REAL}: the real sources are not here (pack where ../shared/data is)")
    if PACKED.exists():
        sys.exit(f"{PACKED}: already packed; remove it to pack again")
    partial = PACKED.with_name(PACKED.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    _cut_fonts(partial / "fonts")
    _same_faces(partial / "fonts")
    (partial / "drawn.sha256").write_text(_same_drawing(partial / "fonts") + "\n")  # checked there too
    for name in ALLOWED:
        shutil.copytree(REAL / name, partial / "real" / name)
    _wheels(partial / "wheels")
    size = _size(partial) + _tracked_size()
    if size > CARRY_LIMIT:
        sys.exit(
            f"{partial}: with the working tree it is {size / 2**20:.1f} MiB, over the {CARRY_LIMIT >> 20} MiB carried"
        )
    os.replace(partial, PACKED)
    print(f"packed {PACKED}: {_size(PACKED) / 2**20:.1f} MiB, {size / 2**20:.1f} MiB with the working tree")


def _carried(fonts_root: Path) -> list[tuple[str, Path]]:
    """Each recipe font file, with where its cut copy lies under `fonts_root` (its path here, below /)."""
    paths = sorted({*general.fonts(), *general.more_fonts()})
    return [(path, fonts_root / os.path.relpath(path, general.FONT_ROOT)) for path in paths]


def _cut_fonts(dest: Path) -> None:
    for path, cut in _carried(dest):
        cut_font(path, cut)


def cut_font(path: str, out: Path) -> None:
    """The font file at `path` with only printable ASCII's glyphs, at `out`: its names (more_fonts groups
    faces by family), hinting and layout kept, so that it draws those glyphs as the whole file does."""
    from fontTools import subset

    logging.getLogger("fontTools").setLevel(logging.WARNING)  # it logs each table it prunes
    options = subset.Options()
    options.name_IDs = ["*"]
    options.name_languages = ["*"]
    options.name_legacy = True
    options.layout_features = ["*"]
    options.legacy_kern = True
    options.notdef_outline = True
    options.glyph_names = True
    font = subset.load_font(path, options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=range(0x20, 0x7F))
    subsetter.subset(font)
    out.parent.mkdir(parents=True, exist_ok=True)
    subset.save_font(font, str(out), options)


def _same_faces(fonts_root: Path) -> None:
    """Every cut face draws each of the recipe's characters as its whole file does, as the recipe draws
    them: one at a time, alone and between spaces (library_looks' django-simple-captcha). A whole string
    can differ: the cut drops AAT layout tables (morx), which no drawing here uses."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    def drawn(path: str, size: int) -> np.ndarray:
        font = ImageFont.truetype(path, size)
        image = Image.new("L", (size * 2 * len(general.CHARSET), size * 4), 0)
        pen = ImageDraw.Draw(image)
        for k, ch in enumerate(general.CHARSET):
            pen.text((size * 2 * k, 0), ch, font=font, fill=255)
            pen.text((size * 2 * k, size * 2), f" {ch} ", font=font, fill=255)
        return np.asarray(image)

    for path, cut in _carried(fonts_root):
        if any(not np.array_equal(drawn(path, size), drawn(str(cut), size)) for size in (13, 32)):
            sys.exit(f"{cut}: the cut face draws the recipe's characters differently from {path}")


def _same_drawing(fonts_root: Path) -> str:
    """The recipe's first images drawn with the installed fonts and with the cut ones are the same bytes
    (the same faces chosen, in the same order): their digest, which gpu_stage.sh checks there."""
    here = {k: v for k, v in os.environ.items() if k != "CAPTCHA_CRNN_FONT_ROOT"}
    found = drawn_digest(here), drawn_digest({**here, "CAPTCHA_CRNN_FONT_ROOT": str(fonts_root)})
    if found[0] != found[1]:
        sys.exit(f"{fonts_root}: the cut fonts draw the recipe's images differently from the installed ones")
    return found[0]


def drawn_digest(env: dict[str, str] | None = None) -> str:
    """The SHA-256 of the recipe's first 300 images (seed 1), drawn in a process with `env`."""
    code = (
        "import hashlib, sys; sys.path.insert(0, 'scripts'); import pretrain; "
        "print(hashlib.sha256(b''.join(png for png, _ in pretrain._draw((1, 300, 48)))).hexdigest())"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"drawing the recipe's first images failed: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout.strip()


def _wheels(dest: Path) -> None:
    from importlib.metadata import version

    platforms = [f"--platform=manylinux_2_{n}_x86_64" for n in (17, 27, 28)] + [
        "--platform=manylinux2014_x86_64"
    ]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            f"--python-version={GPU_PYTHON}",
            "--implementation=cp",
            *platforms,
            f"--dest={dest}",
            *[f"{name}=={version(name)}" for name in WHEELS],
        ],
        check=True,
    )


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _tracked_size() -> int:
    # what the device tool carries: tracked files and untracked ones git does not ignore
    command = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    names = subprocess.run(command, cwd=ROOT, capture_output=True, check=True).stdout
    return sum((ROOT / n).stat().st_size for n in names.decode().split("\0") if n and (ROOT / n).is_file())


# --- package --------------------------------------------------------------------------------------------


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def package(average_with: Path | None = None) -> None:
    """The run's model.pt -> general.pt + general.onnx + general.json (checksums). All three are made in a
    temporary folder first and moved in with general.json last, so a failed export never leaves weights
    that do not match their checksums. With `average_with` (the stage's `init`, the last shipped weights)
    the shipped weights are the mean of the two: both lie on one line of training, and their mean read
    the held-out sets better than either in stage 12 (docs/accuracy.md)."""
    import tempfile

    from captcha_crnn.export.onnx import export
    from captcha_crnn.model.io import load_model, save_model
    from captcha_crnn.training.callbacks import epochs_recorded

    # model.pt when the run ended by itself; else the last epoch's checkpoint (its weights' moving average):
    # a stage stopped early, to fit a session, ships what its last whole epoch left.
    model = RUN / "run" / "model.pt"
    if not model.is_file():
        model = RUN / "run" / "checkpoints" / "last.ckpt"
    if not model.is_file():
        sys.exit(f"{model}: no model yet; run `python scripts/pretrain.py train` first")
    bundle = load_model(model)
    if average_with is not None:
        _average(bundle, load_model(average_with), average_with)
    rows = [r for r in csv.DictReader((RUN / "run" / "metrics.csv").open()) if r["val_loss"]]
    epochs = epochs_recorded(RUN / "run" / "metrics.csv")
    seen = {  # totals over every stage; the validation figure is this stage's (its own validation set)
        "stage": STAGE,
        "epochs": sum(st["epochs"] for st in STAGES) + epochs,
        "images": sum(st["images"] for st in STAGES) + epochs * _count(SHARDS / "train"),
        "minutes": round(sum(st["minutes"] for st in STAGES) + float(rows[-1]["elapsed_s"]) / 60, 1),
        "val_seq_acc": float(rows[-1]["val_seq_acc"]),  # generated + held-back real images
        "from": model.name,
        **({"averaged_with": _averaged(average_with)} if average_with is not None else {}),
    }
    meta = {"name": "general", "recipe": recipe(), "trained": seen}
    WEIGHTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=WEIGHTS) as tmp:
        staged = Path(tmp)
        policy = replace(bundle.policy, crop=READ_CROP)
        save_model(staged / "general.pt", bundle.model, bundle.charset, policy, meta)
        export(staged / "general.pt", staged / "general.onnx", force=True)
        manifest = {
            "name": "general",
            "files": {name: sha256(staged / name) for name in ("general.pt", "general.onnx")},
            "trained": seen,
            "recipe": recipe(),
        }
        (staged / "general.json").write_text(json.dumps(manifest, indent=2) + "\n")
        for name in ("general.pt", "general.onnx", "general.json"):
            os.replace(staged / name, WEIGHTS / name)
    print(f"packaged {WEIGHTS}: {json.dumps(seen)}")


def _averaged(source: Path) -> str:
    return (
        f"stage {STAGES[-1]['stage']}'s shipped weights (general.pt, sha256 {sha256(source)[:12]}); "
        "val_seq_acc is the run's own, before the mean"
    )


def _average(bundle: Any, other: Any, source: Path) -> None:
    """`bundle`'s weights become the mean of its own and `other`'s (the same network and characters)."""
    if other.model.config != bundle.model.config or other.charset != bundle.charset:
        sys.exit(f"{source}: not the run's network and characters; its weights cannot be averaged in")
    mine, theirs = bundle.model.state_dict(), other.model.state_dict()
    bundle.model.load_state_dict(
        {k: (v + theirs[k]) / 2 if v.is_floating_point() else v for k, v in mine.items()}
    )


def base(source: Path) -> None:
    """`source` (a nano general model, e.g. stage 3's general.pt) -> general-base.pt + general-base.json:
    the weights `train --init general` starts from, with the recipe and stages they were trained on."""
    import shutil
    import tempfile

    from captcha_crnn.model.io import load_model

    bundle = load_model(source)
    recipe = bundle.meta.get("recipe")
    if bundle.model.config.channels != (12, 24, 48, 48, 64, 64) or not recipe:
        sys.exit(f"{source}: not a nano general model with its recipe (the base must be what train builds)")
    with tempfile.TemporaryDirectory(dir=WEIGHTS) as tmp:
        staged = Path(tmp) / "general-base.pt"
        shutil.copyfile(source, staged)
        manifest = {
            "name": "general-base",
            "role": "the base: what `train --init general` starts from (nano, fast to fine-tune on a CPU)",
            "files": {"general-base.pt": sha256(staged)},
            "trained": bundle.meta.get("trained", {}),
            "recipe": recipe,
        }
        (Path(tmp) / "general-base.json").write_text(json.dumps(manifest, indent=2) + "\n")
        os.replace(staged, WEIGHTS / "general-base.pt")
        os.replace(Path(tmp) / "general-base.json", WEIGHTS / "general-base.json")
    print(f"packaged {WEIGHTS / 'general-base.pt'} from {source}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("render", help="draw the stage's images once, to disk")
    r.add_argument("--images", type=int, default=200_000, help="generated training images")
    r.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="drawing processes")
    r.add_argument("--packed", action="store_true", help=f"the real sources from {PACKED.name}/ (a lent GPU)")
    t = sub.add_parser("train", help="start or resume the pre-training run")
    t.add_argument("--minutes", type=float, default=95.0, help="total training time across resumes")
    t.add_argument("--epochs", type=int, default=OPTIONS["epochs"], help="the fixed schedule's epochs")
    t.add_argument(
        "--precision", choices=["auto", "32", "bf16"], default="auto", help="bf16 on a GPU that has it"
    )
    sub.add_parser("pack", help=f"what a lent GPU needs beside the working tree -> {PACKED.name}/")
    k = sub.add_parser("package", help="ship the run's model as package data (the reader)")
    k.add_argument(
        "--average-with", type=Path, metavar="FILE", help="ship the mean of the run's weights and FILE's"
    )
    b = sub.add_parser("base", help="ship a nano general model as the base that fine-tuning starts from")
    b.add_argument("source", type=Path, help="the model file, e.g. stage 3's general.pt")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "render":
        render(args.images, args.workers, args.packed)
    elif args.command == "train":
        train(args.minutes, args.epochs, args.precision)
    elif args.command == "pack":
        pack()
    elif args.command == "base":
        base(args.source)
    else:
        package(args.average_with)


if __name__ == "__main__":
    main()
