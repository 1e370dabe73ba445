#!/bin/sh
# One pre-training stage on a lent GPU (issue 25), the one command the device tool runs:
#
#   here, once:  python scripts/pretrain.py pack          # -> .stage/ (git-ignored; ../shared stays here)
#   device run:  command "sh scripts/gpu_stage.sh", carry [".stage"], timeout_s 600
#   back here:   sh scripts/gpu_stage.sh --land DIR       # DIR: the run's files_at (venv active); then
#                python scripts/pretrain.py package [--average-with a copy of the shipped general.pt]
#
# There it installs the wheels the machine lacks, checks that the carried fonts draw the recipe's first
# images as they did here (a warning if not: its Pillow and FreeType may differ), draws the stage's images
# with all its cores (`render --packed`: fonts from .stage/fonts via CAPTCHA_CRNN_FONT_ROOT, real sources
# from .stage/real), and trains under bfloat16 for EPOCHS epochs or until the time left runs out (SECONDS_IN_ALL
# seconds in all: the device's 10-minute limit less a margin). Whatever way training ends, $OUT gets what
# `package` needs: the run's model (or its last checkpoint without optimiser state), metrics.csv,
# run.json, the training set's labels.csv (its size counts the images seen) and the logs.
# The stage is scripts/pretrain.py's STAGE (its RUN and SEED): run it here on a CPU or there, not both.
set -eu
PYTHON=${PYTHON:-python3}
run_dir() { (cd scripts && $PYTHON -c "import pretrain; print(pretrain.RUN.relative_to(pretrain.ROOT))"); }

if [ "${1:-}" = "--land" ]; then  # back here: the files where `package` reads them
    from=${2:?"--land needs the folder the device's files came back to"}
    RUN=$(run_dir)
    [ -f "$from/metrics.csv" ] || { echo "$from: no metrics.csv from a GPU stage"; exit 1; }
    [ -e "$RUN" ] && { echo "$RUN: already there; move it away first"; exit 1; }
    mkdir -p "$RUN/run" "$RUN/shards/train"
    cp "$from"/metrics.csv "$from"/run.json "$RUN/run/"
    if [ -f "$from/model.pt" ]; then cp "$from/model.pt" "$RUN/run/"; else
        mkdir -p "$RUN/run/checkpoints" && cp "$from/last.ckpt" "$RUN/run/checkpoints/"; fi
    cp "$from/labels.csv" "$RUN/shards/train/"
    echo "landed in $RUN: python scripts/pretrain.py package (and --average-with the shipped general.pt)"
    exit 0
fi

OUT=${OUT:?"run through the device tool (it sets OUT), or set OUT"}
deadline=$(( $(date +%s) + ${SECONDS_IN_ALL:-560} ))
[ -d .stage/fonts ] || { echo ".stage: not carried (python scripts/pretrain.py pack, then carry .stage)"; exit 1; }
if ! $PYTHON -c "import captcha, rapidfuzz" 2>/dev/null; then
    $PYTHON -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .stage/wheels/*.whl
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD/src" PYTHONUNBUFFERED=1 CAPTCHA_CRNN_FONT_ROOT="$PWD/.stage/fonts"
RUN=$(run_dir)
rm -rf "$RUN"  # a machine still warm from a try before keeps runs/

collect() {  # on any exit: what package needs, as far as training got
    cp "$RUN/run/metrics.csv" "$RUN/run/run.json" "$RUN/shards/train/labels.csv" "$OUT/" 2>/dev/null || true
    if [ -f "$RUN/run/model.pt" ]; then cp "$RUN/run/model.pt" "$OUT/"
    elif [ -f "$RUN/run/checkpoints/last.ckpt" ]; then
        $PYTHON -c "import sys, torch; c = torch.load(sys.argv[1], map_location='cpu', weights_only=False)
for k in ('optimizer_states', 'lr_schedulers'): c.pop(k, None)
torch.save(c, sys.argv[2])" "$RUN/run/checkpoints/last.ckpt" "$OUT/last.ckpt"
    fi
    ls -l "$OUT"
}
trap collect EXIT

$PYTHON -c "import sys, cv2, numpy, torch, PIL.features as f
print('python', sys.version.split()[0], 'torch', torch.__version__, 'Pillow', f.version('pil'), 'FreeType',
      f.version('freetype2'), 'raqm', f.version('raqm'), 'OpenCV', cv2.__version__, 'numpy', numpy.__version__)
print(torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"
drawn=$(cd scripts && $PYTHON -c "import pretrain; print(pretrain.drawn_digest())")
if [ "$drawn" = "$(cat .stage/drawn.sha256)" ]; then echo "the recipe draws here as where it was packed"
else echo "WARNING: the recipe's first images differ from where it was packed (library versions above)"; fi

$PYTHON scripts/pretrain.py render --packed --images "${IMAGES:-100000}" > "$OUT/render.log" 2>&1 \
    || { tail -n 20 "$OUT/render.log"; exit 1; }
tail -n 1 "$OUT/render.log"
# Reading the images into memory comes before training's own clock: LOAD seconds are kept for it, and 40
# for the last validation and writing model.pt.
left=$(( deadline - $(date +%s) ))
minutes=$(( (left - ${LOAD:-150} - 40) / 6 ))  # tenths of a minute
[ "$minutes" -ge 10 ] || { echo "only ${left}s left after drawing: no time to train"; exit 1; }
echo "training for at most $((minutes / 10)).$((minutes % 10)) minutes, ${EPOCHS:-6} epochs"
timeout "$(( left - 10 ))" $PYTHON scripts/pretrain.py train --epochs "${EPOCHS:-6}" \
    --minutes "$((minutes / 10)).$((minutes % 10))" --precision "${PRECISION:-bf16}" > "$OUT/train.log" 2>&1 \
    || { tail -n 20 "$OUT/train.log"; exit 1; }
tail -n 3 "$OUT/train.log"
