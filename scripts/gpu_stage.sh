#!/bin/sh
# One pre-training stage on a lent GPU (issue 25), the one command the device tool runs:
#
#   here, once:  python scripts/pretrain.py pack          # -> .stage/ (git-ignored; ../shared stays here)
#   device run:  command "sh scripts/gpu_stage.sh", carry [".stage"], timeout_s 570
#   back here:   sh scripts/gpu_stage.sh --land DIR       # DIR: the run's files_at; then package as usual
#
# There it installs the wheels the machine lacks, draws the stage's images with all its cores from the
# carried fonts (CAPTCHA_CRNN_FONT_ROOT) and the carried real sources (`render --packed`), trains under
# bfloat16 for EPOCHS epochs or MINUTES minutes, whichever ends first, and leaves in $OUT what `package`
# needs: the run's model (or its last checkpoint), metrics.csv, run.json, the training set's labels.csv
# (its size counts the images seen) and the logs.
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
[ -d .stage/fonts ] || { echo ".stage: not carried (python scripts/pretrain.py pack, then carry .stage)"; exit 1; }
if ! $PYTHON -c "import captcha, rapidfuzz" 2>/dev/null; then
    $PYTHON -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .stage/wheels/*.whl
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD/src" PYTHONUNBUFFERED=1 CAPTCHA_CRNN_FONT_ROOT="$PWD/.stage/fonts"
RUN=$(run_dir)
$PYTHON -c "import torch; print(torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"
$PYTHON scripts/pretrain.py render --packed --images "${IMAGES:-200000}" > "$OUT/render.log" 2>&1 \
    || { tail -n 20 "$OUT/render.log"; exit 1; }
tail -n 1 "$OUT/render.log"
$PYTHON scripts/pretrain.py train --epochs "${EPOCHS:-5}" --minutes "${MINUTES:-5}" \
    --precision "${PRECISION:-bf16}" > "$OUT/train.log" 2>&1 || { tail -n 20 "$OUT/train.log"; exit 1; }
tail -n 3 "$OUT/train.log"
if [ -f "$RUN/run/model.pt" ]; then cp "$RUN/run/model.pt" "$OUT/"; else cp "$RUN/run/checkpoints/last.ckpt" "$OUT/"; fi
cp "$RUN/run/metrics.csv" "$RUN/run/run.json" "$RUN/shards/train/labels.csv" "$OUT/"
ls -l "$OUT"
