#!/usr/bin/env bash
# One call on a GPU machine checks every CUDA path of mrtrans and times the training step:
#   bash benchmarks/gpu_check.sh [WORK_DIR]
# 1. the tests marked `gpu`; 2. synthetic data; 3. 200 bf16 training steps on CUDA; 4. a resume to 300
# steps; 5. a resume on the CPU (a bf16 run's pools and optimiser state on another device); 6. translate
# (fp32 and bf16); 7. evaluate; 8. benchmarks/bench_train.py (fp32/bf16, channels_last, torch.compile),
# which appends its table to docs/benchmarks.md. Prints one table of what ran and how long it took.
# Fails loudly: the first error stops the script with a non-zero status and says which stage.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-$(mktemp -d -t mrtrans-gpu-check.XXXXXX)}
PY=${PYTHON:-python}
ROWS=()

stage() {  # stage NAME COMMAND...: run, time, record; stop on failure
    local name=$1; shift
    local t0=$SECONDS
    echo "== $name: $*" >&2
    if ! "$@"; then
        echo "gpu_check: FAILED at stage '$name' (command: $*)" >&2
        exit 1
    fi
    ROWS+=("| $name | ok | $((SECONDS - t0)) s |")
}

$PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_check: CUDA is not available here')"
$PY -c "import torch; print('device:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"

stage "gpu tests" $PY -m pytest -q -m gpu tests
# The demo's data (known to prepare); the step timings at the paper's 256x256 come from bench_train below.
stage "synth-brats" $PY -m mrtrans synth-brats "$WORK/brats" --subjects 32 --shape 64,64,48 --tumor-fraction 0.9
stage "prepare-brats" $PY -m mrtrans prepare-brats "$WORK/brats" --out "$WORK/prepared" --train-slices 100 --test-slices 40 \
    --image-size 64 --min-tumor-pixels 10 --min-brain-fraction 0.15 --workers 4
stage "train 200 steps bf16" $PY -m mrtrans train flair2t1 --data "$WORK/prepared" --out "$WORK/run" --device cuda \
    --max-steps 200
stage "resume to 300 (CUDA)" $PY -m mrtrans train flair2t1 --data "$WORK/prepared" --out "$WORK/run" --resume --max-steps 300
stage "resume to 302 (CPU)" $PY -m mrtrans train flair2t1 --data "$WORK/prepared" --out "$WORK/run" --resume --max-steps 302 \
    --device cpu
FLAIR=$(ls "$WORK"/brats/*/*_flair.nii.gz | head -n 1)
stage "translate fp32" $PY -m mrtrans translate "$FLAIR" --model "$WORK/run" --out "$WORK/t1_fp32.nii.gz" --device cuda
stage "translate bf16" $PY -m mrtrans translate "$FLAIR" --model "$WORK/run" --out "$WORK/t1_bf16.nii.gz" --device cuda \
    --precision bf16
stage "bf16 vs fp32 translation" $PY - "$WORK/t1_fp32.nii.gz" "$WORK/t1_bf16.nii.gz" <<'EOF'
import sys

import nibabel as nib
import numpy as np

a, b = (np.asarray(nib.load(p).dataobj, dtype=np.float32) for p in sys.argv[1:3])
diff = np.abs(a - b)[a > 0]
print(f"bf16 - fp32 translation on brain voxels ([0, 1] scale): mean {diff.mean():.5f}, max {diff.max():.5f}")
EOF
stage "evaluate" $PY -m mrtrans evaluate "$WORK/run" --data "$WORK/prepared" --out "$WORK/report" --device cuda \
    --audit-steps 200 --cache-dir "$WORK/cache"
stage "bench_train" $PY benchmarks/bench_train.py --device cuda --repeats 20

echo
echo "## gpu_check ($(date -u +%Y-%m-%d), work folder $WORK)"
echo
echo "| stage | status | wall time |"
echo "|---|---|---|"
printf '%s\n' "${ROWS[@]}"
