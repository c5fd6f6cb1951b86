#!/usr/bin/env bash
# One device window (~10 minutes on an H100/H200) for the figures the issues ask of a GPU, run through
# the `device` tool from the repository root:
#
#   bash benchmarks/gpu_window.sh                       # on the device machine; records land in $OUT
#   WINDOW=synthesis bash benchmarks/gpu_window.sh      # the other window (see below)
#   SMOKE=1 DEVICE=cpu OUT=/tmp/w bash benchmarks/gpu_window.sh   # a minute or two, here: the plumbing
#
# Prepare the wheels first (benchmarks/README.md, "Runs that need a GPU"), then carry `.whl`. Each part
# has its own time limit, so one that overruns loses its record but not the others'; every part writes
# one JSON record under $OUT (provenance: GPU, commit, date) and its log to $OUT/window.log. Commit the
# records unchanged under benchmarks/results/. Two windows, each about 10 minutes:
# WINDOW=speed (the default; issue 12):
#   1. bench_stage1: Stage 1 and supervised throughput with bf16 autocast, channels-last and
#      torch.compile against the plain loop in the same run (item 5);
#   2. bench_student_grid: one by one against stacked students on the GPU (item 4);
#   3. bench_knn_infomap: the kNN kernel beside its SGEMM bound and the queue refresh on CUDA (item 1).
# WINDOW=synthesis (issue 10):
#   1. bench_sfm --full --profile: SFM (direct and chunked) against LGM, time per step and peak memory on
#      ViT-B/16 (timm, random weights: cost only) and EfficientNet-Lite0, their ratio to the paper's
#      4x time / 10x memory, and where an SFM step's time goes.
set -uo pipefail
OUT=${OUT:?the device tool sets OUT}
DEVICE=${DEVICE:-cuda}
WINDOW=${WINDOW:-speed}
case "$WINDOW" in speed|synthesis) ;; *) echo "WINDOW=$WINDOW: use speed or synthesis" >&2; exit 2;; esac
mkdir -p "$OUT"
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD DDLIB_CACHE=$PWD/.cache/ddlib DDLIB_OFFLINE=1 PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
log() { echo "== $* ($(date -u +%H:%M:%S))" | tee -a "$OUT/window.log"; }
part() {  # part <seconds> <name> <command...>
  local limit=$1 name=$2; shift 2
  log "$name (limit ${limit}s): $*"
  timeout "$limit" "$@" >>"$OUT/window.log" 2>&1
  log "$name exit $?"
}
if [ "$WINDOW" = synthesis ]; then
  [ "${SMOKE:-0}" = 1 ] && tiny=--tiny || { tiny=; nvidia-smi --query-gpu=name,memory.total,driver_version \
    --format=csv >>"$OUT/window.log" 2>&1; }
  part 540 sfm $PY benchmarks/bench_sfm.py --device "$DEVICE" --full --profile $tiny --out "$OUT/bench_sfm_${DEVICE}.json"
elif [ "${SMOKE:-0}" = 1 ]; then  # the plumbing only: tiny sizes, any device
  part 300 stage1 $PY benchmarks/bench_stage1.py --device "$DEVICE" --cases convnet-28x28x1 --n-train 256 \
    --rounds 1 --accel amp,compile:eager --out "$OUT/bench_stage1_smoke.json"
  part 300 grid $PY benchmarks/bench_student_grid.py --device "$DEVICE" --threads 1 --students 2 --ipcs 10 \
    --timed-epochs 1 --stacks 1,2 --eval-images 64 --eval-students 2 --repeats 1 --check-students 2 \
    --out "$OUT/bench_student_grid_smoke.json"
  part 300 knn $PY benchmarks/bench_knn_infomap.py --device "$DEVICE" --n 2000 --dim 64 --queue 4096 \
    --queue-dim 32 --repeats 1 --no-baseline --out "$OUT/bench_knn_infomap_smoke.json"
else
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >>"$OUT/window.log" 2>&1
  part 270 stage1 $PY benchmarks/bench_stage1.py --device "$DEVICE" --cases resnet18-32x32x3,convnet-32x32x3 \
    --rounds 1 --out "$OUT/bench_stage1_cuda.json"
  part 150 grid $PY benchmarks/bench_student_grid.py --device "$DEVICE" --threads 1 --students 30 --ipcs 10,50 \
    --stacks 1,5,30 --repeats 1 --out "$OUT/bench_student_grid_cuda.json"
  part 90 knn $PY benchmarks/bench_knn_infomap.py --device "$DEVICE" --repeats 2 --out "$OUT/bench_knn_infomap_cuda.json"
fi
ls -la "$OUT" >>"$OUT/window.log"
