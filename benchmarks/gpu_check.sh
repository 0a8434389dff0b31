#!/usr/bin/env bash
# Device check on one GPU machine in at most 8 minutes: (a) the tiny config end to end on CUDA, recording the
# device every GPU job saw, (c) one shard of the paper rehearsal (tests/test_paper_rehearsal.py: the paper's
# models at full width on its datasets' formats) on CUDA with --resources gpu=1, then (b) the benchmark harness
# on CUDA, written to RESULTS-cuda.md.
#
#   bash benchmarks/gpu_check.sh [--cpu] [--smoke] [--dry-run] [--cores N] [--sections "1 2 4"] [--configfile F]
#                                [--rehearsal-study S]
#
#   --cpu      the same steps on the CPU (device cpu, no GPU resources): checks the script without a GPU
#   --smoke    the harness at its smoke sizes (default: full sizes, sections 1 2 4, cut off at the time limit)
#   --dry-run  print every command; run only the Python check and `snakemake -n` (which plans the CUDA config)
#   --cores N  Snakemake's --cores (default 8)
#   --sections the harness sections to run (default "1 2 4"; 2 is dropped when the peers are not installed)
#   --configfile the workflow config of step (a) (default tests/configs/tiny.yaml)
#   --rehearsal-study the study of the rehearsal shard of step (c) (default hessianflow: c1 and resnet20, ABSA up
#              to a batch of 16,384); none skips the step
#
# Everything is written under $OUT when it is set (the device tool's output folder), else under
# benchmarks/.cache/gpu-check/ (git-ignored) with RESULTS-cuda.md (RESULTS-cpu.md with --cpu) in benchmarks/.
# GPU_CHECK_SECONDS (default 480) is the time limit; the tiny run stops early enough to leave the rehearsal shard
# 150 s and the harness 200 s, the shard early enough to leave the harness its 200 s, and the harness is stopped at
# the limit (its report is written only when it finishes). The shard's working folder, with its logs and
# benchmark files (peak memory per job), is kept under rehearsal/.
#
# Assumptions: a copy of the repository on a fresh machine without internet. A Python with torch is either on
# the PATH (then a venv sharing its site-packages gets the package by `pip install --no-deps -e .`, plus what
# else is missing from the local package index) or not (then `make install` builds .venv from the local index).
# The peers (PyHessian, curvlinops, hessian-eigenthings) are optional: without them section 2 is skipped.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LIMIT=${GPU_CHECK_SECONDS:-480}
HARNESS_SHARE=200
REHEARSAL_SHARE=150
DEVICE=cuda CORES=8 SMOKE=0 DRY=0 SECTIONS=(1 2 4) CONFIG=$REPO/tests/configs/tiny.yaml STUDY=hessianflow
while [ $# -gt 0 ]; do
    case "$1" in
    --cpu) DEVICE=cpu ;;
    --smoke) SMOKE=1 ;;
    --dry-run) DRY=1 ;;
    --cores) CORES=$2 && shift ;;
    --sections) read -r -a SECTIONS <<<"$2" && shift ;;
    --configfile) CONFIG=$(realpath "$2") && shift ;;
    --rehearsal-study) STUDY=$2 && shift ;;
    *) echo "gpu_check.sh: unknown option $1" >&2 && exit 2 ;;
    esac
    shift
done
if [ -n "${OUT:-}" ]; then
    DEST=$OUT REPORT=$OUT/RESULTS-$DEVICE.md
else
    DEST=$REPO/benchmarks/.cache/gpu-check REPORT=$REPO/benchmarks/RESULTS-$DEVICE.md
fi
WORK=$DEST/workdir # Snakemake's working directory: the tiny run's results/
mkdir -p "$DEST"
exec > >(tee "$DEST/gpu_check.log") 2>&1

step() { echo "== $SECONDS s: $*"; }
budget() { # seconds left before the limit, minus $1, at least 1
    local left=$((LIMIT - SECONDS - $1))
    echo $((left > 1 ? left : 1))
}
show() { echo "+ $*"; }

step "a Python with torch"
if [ -x "$REPO/.venv/bin/python" ] && "$REPO/.venv/bin/python" -c 'import torch, snakemake, hessian_spectra' 2>/dev/null; then
    PY=$REPO/.venv/bin/python
elif python3 -c 'import torch' 2>/dev/null; then
    PY=$DEST/venv/bin/python
    [ -x "$PY" ] || python3 -m venv --system-site-packages "$DEST/venv"
    "$PY" -m pip install -q --disable-pip-version-check --no-deps -e "$REPO"
    "$PY" -c 'import snakemake, torchvision, scipy, pandas, seaborn, sklearn' 2>/dev/null ||
        "$PY" -m pip install -q --disable-pip-version-check -e "$REPO"
else
    make -C "$REPO" install
    PY=$REPO/.venv/bin/python
fi
"$PY" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, "devices", torch.cuda.device_count())'
if [ "$DEVICE" = cuda ] && [ "$DRY" = 0 ]; then
    "$PY" -c 'import torch; assert torch.cuda.is_available(), "torch sees no CUDA device"'
    nvidia-smi -L || true
fi

step "(a) the tiny config end to end on $DEVICE"
SNAKEMAKE=("$PY" -m snakemake --snakefile "$REPO/Snakefile" --directory "$WORK" --cores "$CORES")
if [ "$DEVICE" = cuda ]; then
    SNAKEMAKE+=(--resources gpu=1 --config device=cuda gpus=1)
fi
TINY=(--configfile "$CONFIG") # last: --configfile takes several values
rm -rf "$WORK" && mkdir -p "$WORK"
"${SNAKEMAKE[@]}" -n "${TINY[@]}" >"$DEST/plan.txt"
grep -A 40 "^Job stats" "$DEST/plan.txt" | grep -E "^[a-z_]+ +[0-9]+$" || true
show "${SNAKEMAKE[*]} ${TINY[*]}"
if [ "$DRY" = 0 ]; then
    timeout "$(budget $((HARNESS_SHARE + REHEARSAL_SHARE)))" "${SNAKEMAKE[@]}" "${TINY[@]}" >"$DEST/snakemake.log" 2>&1 ||
        echo "snakemake failed or was stopped: see snakemake.log"
    for dir in logs benchmarks; do
        [ -d "$WORK/results/$dir" ] && cp -r "$WORK/results/$dir" "$DEST/$dir"
    done
    # the device of every GPU job: gpu_slots.py logs the claimed CUDA_VISIBLE_DEVICES, runtime.py the device name
    grep -r -H -E "CUDA_VISIBLE_DEVICES=|using CUDA device" "$DEST/logs" 2>/dev/null | sed "s#^$DEST/logs/##" >"$DEST/devices.txt" || true
    echo "logs naming a device: $(cut -d: -f1 "$DEST/devices.txt" | sort -u | wc -l) of $(find "$DEST/logs" -type f 2>/dev/null | wc -l)"
fi

step "(c) the paper rehearsal's $STUDY shard on $DEVICE"
REHEARSAL=(env "HESSIAN_SPECTRA_REHEARSAL_DIR=$DEST/rehearsal" "HESSIAN_SPECTRA_REHEARSAL_STUDIES=$STUDY"
    "HESSIAN_SPECTRA_REHEARSAL_DEVICE=$DEVICE" "$PY" -m pytest -q -p no:cacheprovider -m slow -x
    "$REPO/tests/test_paper_rehearsal.py")
if [ "$STUDY" != none ]; then
    show "${REHEARSAL[*]}"
    if [ "$DRY" = 0 ]; then
        (cd "$REPO" && timeout "$(budget "$HARNESS_SHARE")" "${REHEARSAL[@]}") >"$DEST/rehearsal.log" 2>&1 ||
            echo "the rehearsal shard failed or was stopped: see rehearsal.log"
    fi
fi

step "(b) the benchmark harness on $DEVICE"
if ! "$PY" -c 'import pyhessian, curvlinops, hessian_eigenthings' 2>/dev/null; then
    read -r -a SECTIONS <<<"${SECTIONS[*]/2/}"
fi
BENCH=("$PY" "$REPO/benchmarks/run.py" --device "$DEVICE" --out "$REPORT" --cache-dir "$DEST/bench-cache"
    --results "$WORK/results" --sections "${SECTIONS[@]}")
[ "$SMOKE" = 1 ] && BENCH+=(--smoke)
show "${BENCH[*]}"
if [ "$DRY" = 0 ]; then
    timeout "$(budget 5)" "${BENCH[@]}" >"$DEST/benchmarks.log" 2>&1 || echo "the harness failed or was stopped: see benchmarks.log"
fi
step "done: outputs in $DEST"
