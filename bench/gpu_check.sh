#!/usr/bin/env bash
# The GPU session's checks, in one call of the device tool (see bench/README.md):
# kernel correctness on CUDA, the kernel benchmark, the per-config profile with the
# RoPE ablation, an Nsight Compute profile of the largest shape, the model bench.
# Runs from the source tree with the GPU image's python3 (torch, triton, numpy 2).
#   MARIONETTE_COMMIT=<sha> OUT=<dir> bash bench/gpu_check.sh [quick|full]
set -u
mode=${1:-quick}
export PYTHONUNBUFFERED=1 PYTHONPATH=. PYTHONDONTWRITEBYTECODE=1
out=${OUT:-/tmp/out}; mkdir -p "$out"
step() { echo "=== $(date +%T) $*"; }
step env
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, 'cuda', torch.version.cuda)"
step bench kernels $mode
flags=$([ "$mode" = quick ] && echo --quick)
timeout "${KERNELS_S:-200}" python3 -m realtime.cli bench kernels $flags --json "$out/kernels-h200.json" 2>&1 | grep -v Warning
step profile
timeout "${PROFILE_S:-120}" python3 -m bench.kernels_profile --json "$out/kernels-profile-h200.json" \
    --shapes "${PROFILE_SHAPES:-preset-cpu,preset-gpu,256px-k4-w32,512px-k1-w4,512px-k4-w32}"
step ncu
timeout "${NCU_S:-90}" ncu --clock-control none -k regex:_chunk_attn_fwd --launch-skip 1 --launch-count 1 \
    --set full python3 -m bench.kernels_profile --single 512px-k4-w32 --block "${NCU_BLOCK:-128,64,8,3}" \
    > "$out/ncu-512px-k4-w32.txt" 2>&1; tail -3 "$out/ncu-512px-k4-w32.txt"
step model
timeout "${MODEL_S:-90}" python3 -m realtime.cli bench model --preset gpu --json "$out/model-gpu-h200.json" 2>&1 | tail -5
step tests
timeout "${TESTS_S:-150}" python3 -m pytest -q -p no:cacheprovider -n 16 tests/kernels/test_gpu.py 2>&1 | tail -4
step done
