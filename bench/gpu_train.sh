#!/usr/bin/env bash
# Issue 5's open question on a GPU, in one call of the device tool: does the cpu
# architecture (the shipped checkpoint's) start to follow expressions and fingers when
# it sees many times the samples its CPU runs did? Every CPU trial of the model card
# ended with "steps, not ideas, are what these runs lack"; this is the run that says.
#
#   1. renders a studio dataset of 128 characters of another seed (none of them is a
#      character `eval` holds out of studio128r) on the machine's cores;
#   2. continues the shipped teacher on it, then the shipped student against that
#      teacher, each for a planned number of minutes (`--budget`) at 8x the cpu plan's
#      batch (`--batch-scale`), bf16 autocast on CUDA;
#   3. leaves the new student (its teacher beside it) and the logs in $OUT.
# Evaluate what comes back on the CPU, as every row of the model card was:
#   marionette eval --checkpoint DIR/student --steps 1 --data studio128r --clips 4 \
#       --clip-frames 48 --frames 3000 --threads 1 --json eval-gpu.json
#
# There (bench/README.md: the device tool): the GPU image has no skia-python and no
# EGL/GL libraries. `bash bench/gpu_train.sh prepare` fetches them here into `.whl`
# and `.gl`; then, in one call,
#   run(command="OUT=$OUT bash bench/gpu_train.sh", carry=[".whl", ".gl"], timeout_s=560)
# (POSE_SCALE=4 in front: teacher and student on pose maps twice as fine.)
# Here, as a check of the script (tiny preset, CPU, seconds):
#   PRESET=tiny DEVICE=cpu CHARS=4 CLIPS=8 RES=32 TEACHER_MIN=0.1 STUDENT_MIN=0.1 \
#       INIT=<tiny checkpoint with teacher/> OUT=/tmp/gt bash bench/gpu_train.sh
set -euo pipefail
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
if [ "${1:-}" = prepare ]; then
    # here, once per checkout: what the GPU image lacks, into .whl and .gl (ignored)
    mkdir -p .whl .gl /tmp/amd64/partial
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
        -d .whl skia-python==144.1
    o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
    apt-get $o update -qq
    (cd .gl && apt-get $o download libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
    du -sh .whl .gl
    exit 0
fi
PRESET=${PRESET:-cpu} DEVICE=${DEVICE:-cuda} SCALE=${SCALE:-8}
CHARS=${CHARS:-128} CLIPS=${CLIPS:-768} RES=${RES:-128} SEED=${SEED:-1}
TEACHER_MIN=${TEACHER_MIN:-3.5} STUDENT_MIN=${STUDENT_MIN:-3}
INIT=${INIT:-realtime/checkpoints/default}
# POSE_SCALE=4: both stages read pose maps twice as fine (stop 34 of the experiment
# log: a student alone does not learn them from a teacher that reads the coarse ones)
fine=(); [ -n "${POSE_SCALE:-}" ] && fine=(--pose-scale "$POSE_SCALE")
out=${OUT:-/tmp/out}; work=${WORK:-/tmp/gpu_train}
mkdir -p "$out"; rm -rf "$work"; mkdir -p "$work"
exec > >(tee "$out/gpu-train.log") 2>&1
step() { echo "=== $(date +%T) $*"; }

step env
# only what is missing: the carried libraries and wheel
if ! ldconfig -p | grep -q 'libEGL.so.1 ' && [ -d .gl ]; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
fi
export PYTHONPATH=.
if ! python3 -c "import skia" 2>/dev/null && [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:.
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
# each command's whole output in $work, its last lines (all of it if it fails) here
mm() {
    local name=$1; shift
    if python3 -m realtime.cli "$@" > "$work/$name.out" 2>&1; then
        grep -v '^INFO' "$work/$name.out" | tail -3 || true
    else
        tail -40 "$work/$name.out"; step "$name failed"; exit 1
    fi
}

step dataset
mm dataset avatar dataset --out "$work/studio" --characters "$CHARS" --clips "$CLIPS" \
    --resolution "$RES" --frames 24 --performers 16 --clips-per-shard 32 --seed "$SEED" \
    --workers "$(nproc)"

step teacher "$TEACHER_MIN min"
mm teacher train teacher --preset "$PRESET" --device "$DEVICE" --data "$work/studio" \
    --init "$INIT/teacher" --out "$work/teacher" --batch-scale "$SCALE" \
    --budget "$TEACHER_MIN" --lr 2e-4 --no-progress "${fine[@]}"

step student "$STUDENT_MIN min"
mm student train student --preset "$PRESET" --device "$DEVICE" --data "$work/studio" \
    --init "$INIT" --teacher "$work/teacher" --out "$work/student" --batch-scale "$SCALE" \
    --budget "$STUDENT_MIN" --lr 1e-4 --gt-weight-long 0.25 --no-progress "${fine[@]}"

step collect
mkdir -p "$out/student/teacher"
cp "$work/student/config.json" "$work/student/model.safetensors" "$out/student/"
cp "$work/student/teacher/config.json" "$work/student/teacher/model.safetensors" \
    "$out/student/teacher/"
cp "$work/teacher/log.jsonl" "$out/teacher-log.jsonl"
cp "$work/student/log.jsonl" "$out/student-log.jsonl"
step done
sleep 1     # let tee write the log's last lines before the call collects $OUT
