#!/usr/bin/env bash
# Issue 5's open question on a GPU, in one call of the device tool: does the cpu
# architecture (the shipped checkpoint's) start to follow expressions and fingers when
# it sees many times the samples its CPU runs did? Every CPU trial of the model card
# ended with "steps, not ideas, are what these runs lack"; this is the run that says.
#
#   1. renders a studio dataset of 128 characters of another seed (none of them is a
#      character `eval` holds out of studio128r) on the machine's cores;
#   2. for each pose-map scale in POSE_SCALES (one arm each, all at once on the one
#      GPU), continues the shipped teacher (or TEACHER_INIT) on it, then the shipped
#      student (or STUDENT_INIT) against that teacher, each for a planned number of
#      minutes (`--budget`) at 32x (teacher) and 96x (student) the cpu plan's batch
#      (`--batch-scale`), bf16 autocast on CUDA;
#   3. leaves each arm's models in $OUT/psS/{teacher,student}.safetensors (each as
#      soon as it exists) and their configs and logs in $OUT/meta.tar.
# Put the checkpoint together and evaluate it on the CPU, as every row of the model
# card was:
#   tar xf meta.tar -C DIR; cp psS/student.safetensors DIR/psS/student/model.safetensors
#   cp psS/teacher.safetensors DIR/psS/student/teacher/model.safetensors
#   marionette eval --checkpoint DIR/psS/student --steps 1 --data studio128r --clips 4 \
#       --clip-frames 48 --frames 3000 --threads 1 --json eval-gpu.json
#
# There (bench/README.md: the device tool): the GPU image has no skia-python and no
# EGL/GL libraries. `bash bench/gpu_train.sh prepare` fetches them here into `.whl`
# and `.gl`; then, in one call,
#   run(command="POSE_SCALES='2 4' END_S=540 OUT=$OUT bash bench/gpu_train.sh",
#       carry=[".whl", ".gl"], timeout_s=580)
# To continue an earlier call's models instead of the shipped ones:
#   bash bench/gpu_train.sh pack RUN/teacher RUN/student      # here, into .init/
#   run(command="TEACHER_INIT=.init/teacher STUDENT_INIT=.init/student END_S=560 OUT=$OUT \
#       bash bench/gpu_train.sh", carry=[".whl", ".gl", ".init"], timeout_s=595)
# The cpu32 preset (latents twice as fine) from a graft of the shipped teacher (stop 38,
# on the CPU: 18.6 dB in 35 minutes, against 15.7 dB in 50 from nothing); here, first:
#   marionette train ae --preset cpu32 --data studio128r --steps 1500 --out ae32
#   marionette train graft ae32 --dit-from realtime/checkpoints/default/teacher --out .init/teacher
#   run(command="PRESET=cpu32 TEACHER_INIT=.init/teacher STUDENT_INIT=teacher END_S=560 \
#       OUT=$OUT bash bench/gpu_train.sh", carry=[".whl", ".gl", ".init"], timeout_s=595)
# A checkpoint from nothing on another preset (`train all`, see `fresh` below):
#   run(command="PRESET=cpu32 END_S=560 OUT=$OUT bash bench/gpu_train.sh fresh",
#       carry=[".whl", ".gl"], timeout_s=595)
# Here, as a check of the script (CPU, bf16 autocast off, about a minute and a half):
#   DEVICE=cpu SCALE=1 CHARS=4 CLIPS=8 TEACHER_MIN=0.2 STUDENT_MIN=0.2 \
#       POSE_SCALES='2 4' OUT=/tmp/gt bash bench/gpu_train.sh
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
if [ "${1:-}" = pack ]; then
    # here: `bash bench/gpu_train.sh pack TEACHER_DIR STUDENT_DIR` puts an earlier call's
    # models into .init/ (ignored) for TEACHER_INIT=.init/teacher STUDENT_INIT=.init/student.
    # The device tool carries 64 MiB with the tree (31 MB of it tracked, 15 MB .whl), so
    # the teacher's DiT travels in fp16 (a relative change of about 4e-4 per tensor;
    # loading casts it back to fp32); its autoencoder (1.3 MB) and the student stay
    # exact: a rounded encoder is another latent space to `train ae --decoder-of`,
    # which then leaves the teacher out (stop 37's call carried it all in fp16).
    [ $# -eq 3 ] || { echo "usage: $0 pack TEACHER_DIR STUDENT_DIR" >&2; exit 2; }
    rm -rf .init; mkdir -p .init/teacher .init/student
    cp "$2/config.json" .init/teacher/; cp "$3/config.json" "$3/model.safetensors" .init/student/
    python3 - "$2/model.safetensors" .init/teacher/model.safetensors <<'PY'
import sys
import torch
from safetensors.torch import load_file, save_file
state = load_file(sys.argv[1])
too_big = [k for k, v in state.items()
           if v.is_floating_point() and not k.startswith("ae.") and v.abs().max() > 6e4]
if too_big:
    sys.exit(f"fp16 cannot hold {too_big[:3]}: carry the teacher in fp32 instead")
save_file({k: v.half() if v.dtype == torch.float32 and not k.startswith("ae.") else v
           for k, v in state.items()}, sys.argv[2])
PY
    du -sh .init
    exit 0
fi
PRESET=${PRESET:-cpu} DEVICE=${DEVICE:-cuda}
# each stage's batch, as a multiple of the cpu plan's (SCALE sets both). Measured on
# the H200 (bench/results/train-rate-h200.json): the student stage is bound by its
# small sequential forward passes (about 45 a step then; about 30 since the teacher's
# two guidance branches run as one), 2.2 steps/s at 8x and 1.5 at 96x, so 96x feeds it
# 8.5 times the samples a second; the teacher steps as fast at 32x as at 8x.
TEACHER_SCALE=${TEACHER_SCALE:-${SCALE:-32}} STUDENT_SCALE=${STUDENT_SCALE:-${SCALE:-96}}
CHARS=${CHARS:-128} CLIPS=${CLIPS:-768} RES=${RES:-128} SEED=${SEED:-1}
# FRAMINGS: the cameras the clips are drawn through (default: the studio's mix; `face`:
# head-and-shoulders portraits, where the shipped autoencoder keeps 45 % of an
# expression change against 12 % on the mix: stop 40)
FRAMINGS=${FRAMINGS:-}
# the teacher's recipe: its peak learning rate and its counterfactual-pair weight
# (stop 40: --lr 1e-4 --pair-weight 10 on one character's clips made a teacher follow
# the expression on new clips of it; stop 41: weight 2 keeps nine tenths of that; stop
# 42: on 3 characters at about 3700 samples a character a teacher follows on new clips
# of all three (+0.108 on 16 clips), on 7 at about 1500 on none, and neither on an
# unseen character. So the call gives many characters that dose each: 27 training
# characters of about 207 clips (the 3 characters had 210, the 7 120), at 32x the
# batch for 4 minutes (the H200 probe's teacher rate, halved for the twins: about
# 6000 samples a character):
#   run(command="CHARS=32 CLIPS=8000 SEED=5 PAIR_WEIGHT=2 TEACHER_LR=1e-4 \
#       TEACHER_MIN=4 STUDENT_MIN=2 OUT=$OUT bash bench/gpu_train.sh",
#       carry=[".whl", ".gl"], timeout_s=595)
# The twins render on every core before the teacher's first step, outside its
# --budget and --time-limit (about 0.1 s each on one core of the 2-core CPU); with
# END_S instead of the minutes keep a minute and a half back for them.)
# DEPTH=D deepens the teacher's transformer to D blocks (`train teacher --depth`, new
# blocks starting as the identity). Stop 47: on the CPU a cpu32 teacher deepened 4 -> 8
# followed less than its control at equal time (+0.105 against +0.138), short of steps;
# whether size lifts it needs the GPU's steps. The student keeps its own depth unless
# STUDENT_INIT=teacher.
TEACHER_LR=${TEACHER_LR:-2e-4} PAIR_WEIGHT=${PAIR_WEIGHT:-}
DEPTH=${DEPTH:-}
TEACHER_MIN=${TEACHER_MIN:-3.5} STUDENT_MIN=${STUDENT_MIN:-3}
# END_S: instead, split what is left after the dataset, up to END_S seconds after the
# start less a minute for the stages' start-up and the collection, 40:60 between them
# (stop 36, at 54:46 and 8x: the teacher gained 0.28 dB in 4.2 minutes, the student
# was still far from converged after 3.5; at 32x the teacher's samples come 4x faster)
END_S=${END_S:-}
INIT=${INIT:-realtime/checkpoints/default}
# where each stage starts (default: INIT's; an earlier call's models: `pack`, above;
# STUDENT_INIT=teacher: the teacher this call trained, for a preset with no student)
TEACHER_INIT=${TEACHER_INIT:-$INIT/teacher} STUDENT_INIT=${STUDENT_INIT:-$INIT}
# POSE_SCALES: one arm per scale, all at once on the one GPU (the cpu architecture
# leaves most of it idle). 2 is the shipped checkpoint's own maps (the control); 4 is
# twice as fine, which stop 34 of the experiment log found a student alone does not
# learn from a teacher that reads the coarse ones.
POSE_SCALES=${POSE_SCALES:-2}
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
        tail -40 "$work/$name.out"; step "$name failed"; return 1
    fi
}

if [ "${1:-}" = probe ]; then
    # a short check of how each stage's step time grows with the batch on this
    # machine (stop 36: the student stage stepped at 2/s at --batch-scale 8, a tenth
    # of the teacher's rate): 30 steps per batch scale, the rate from the log's
    # wall clock between step 10 and the last (start-up left out)
    step "probe dataset"
    mm dataset avatar dataset --out "$work/studio" --characters 16 --clips 64 \
        --resolution "$RES" --frames 24 --performers 16 --clips-per-shard 32 --seed "$SEED" \
        --workers "$(nproc)" || exit 1
    for stage in student teacher; do
        for bs in ${PROBE_SCALES:-8 32 96}; do          # one stage at a time
            d="$work/probe-$stage-$bs"
            extra=(--init "$INIT/teacher"); [ $stage = student ] && extra=(--init "$INIT" --teacher "$INIT/teacher")
            mm "probe-$stage-$bs" train $stage --preset "$PRESET" --device "$DEVICE" \
                --data "$work/studio" "${extra[@]}" --out "$d" --batch-scale "$bs" \
                --steps "${PROBE_STEPS:-30}" --no-progress || continue
            python3 - "$d/log.jsonl" "$stage" "$bs" <<'PY' | tee -a "$out/probe.txt"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l]
a, b = rows[0], rows[-1]
rate = (b["step"] - a["step"]) / (b["wall_s"] - a["wall_s"])
print(f"{sys.argv[2]} batch-scale {sys.argv[3]}: {rate:.2f} steps/s "
      f"(steps {a['step']}-{b['step']}, cpu/wall {(b['cpu_s'] - a['cpu_s']) / (b['wall_s'] - a['wall_s']):.2f})")
PY
        done
    done
    exit 0
fi

step dataset
# shellcheck disable=SC2086  # FRAMINGS is a list of words
mm dataset avatar dataset --out "$work/studio" --characters "$CHARS" --clips "$CLIPS" \
    --resolution "$RES" --frames 24 --performers 16 --clips-per-shard 32 --seed "$SEED" \
    --workers "$(nproc)" ${FRAMINGS:+--framings $FRAMINGS} || exit 1

if [ "${1:-}" = fresh ]; then
    # a whole checkpoint from nothing under PRESET (`marionette train all`: autoencoder,
    # teacher, student, decoder on the student's streams), all stages at SCALE x the
    # cpu plan's batch (default 32), in what END_S leaves (see below), else HOURS.
    # For a preset no shipped checkpoint has, such as cpu32 (stop 38: its latents keep
    # 2.3x the expression and finger change); $OUT/fresh/ gets the student and the
    # teacher, $OUT/meta.tar every stage's config, log and recipe.json. A stage's
    # start-up is outside its share (the last one first streams the student over every
    # training clip), so END_S keeps two and a half minutes back. Checked on the CPU
    # (stop 38, beside two training runs): DEVICE=cpu PRESET=cpu32 SCALE=1 CHARS=4
    # CLIPS=8 HOURS=0.03 took 8.5 minutes, nearly all of it start-up.
    hours=${HOURS:-0.15}
    [ -n "$END_S" ] && hours=$(awk "BEGIN{printf \"%.4f\", ($END_S - $SECONDS - 150) / 3600}")
    step "fresh $PRESET, $hours h"
    mkdir -p "$out/fresh"
    mm fresh train all --preset "$PRESET" --device "$DEVICE" --data "$work/studio" \
        --out "$work/all" --hours "$hours" --batch-scale "${SCALE:-32}" --no-progress || true
    cp "$work/all/final/model.safetensors" "$out/fresh/student.safetensors" || true
    cp "$work/all/final/teacher/model.safetensors" "$out/fresh/teacher.safetensors" || true
    (cd "$work" && tar cf "$out/meta.tar" --ignore-failed-read ./*.out ./all/recipe.json \
        ./all/*/config.json ./all/*/log.jsonl ./all/*/*.json ./all/final/teacher/config.json \
        2>/dev/null) || true
    ls -la "$out" "$out/fresh"
    step done
    sleep 1
    exit 0
fi

if [ -n "$END_S" ]; then
    left=$(( END_S - SECONDS - 60 ))
    TEACHER_MIN=$(awk "BEGIN{printf \"%.2f\", 0.40 * $left / 60}")
    STUDENT_MIN=$(awk "BEGIN{printf \"%.2f\", 0.60 * $left / 60}")
fi

# one arm: the teacher, then the student against it; each stage's model in $out/psS/
# as soon as it exists (a later failure or the call's time limit keeps it), a hard
# --time-limit half a minute past the planned budget
arm() {
    local s=$1 a="$work/ps$1"
    mkdir -p "$out/ps$s" "$a"
    step "ps$s teacher $TEACHER_MIN min"
    mm "ps$s-teacher" train teacher --preset "$PRESET" --device "$DEVICE" --data "$work/studio" \
        --init "$TEACHER_INIT" --out "$a/teacher" --batch-scale "$TEACHER_SCALE" --pose-scale "$s" \
        --budget "$TEACHER_MIN" --time-limit "$(awk "BEGIN{print $TEACHER_MIN + 0.5}")" \
        --lr "$TEACHER_LR" ${PAIR_WEIGHT:+--pair-weight "$PAIR_WEIGHT"} ${DEPTH:+--depth "$DEPTH"} \
        --no-progress || return 1
    cp "$a/teacher/model.safetensors" "$out/ps$s/teacher.safetensors"
    step "ps$s student $STUDENT_MIN min"
    local si=$STUDENT_INIT; [ "$si" = teacher ] && si="$a/teacher"
    mm "ps$s-student" train student --preset "$PRESET" --device "$DEVICE" --data "$work/studio" \
        --init "$si" --teacher "$a/teacher" --out "$a/student" --batch-scale "$STUDENT_SCALE" \
        --pose-scale "$s" --budget "$STUDENT_MIN" --time-limit "$(awk "BEGIN{print $STUDENT_MIN + 0.5}")" \
        --lr 1e-4 --gt-weight-long 0.25 --no-progress || return 1
    cp "$a/student/model.safetensors" "$out/ps$s/student.safetensors"
    step "ps$s done"
}
export OMP_NUM_THREADS=$(( $(nproc) / $(echo $POSE_SCALES | wc -w) ))
pids=()
for s in $POSE_SCALES; do arm "$s" & pids+=($!); done
for p in "${pids[@]}"; do wait "$p" || true; done

step collect
# the models are in $out/psS/; everything else small in one tar (the device tool
# brings back 8 files at most)
(cd "$work" && tar cf "$out/meta.tar" --ignore-failed-read ./*.out \
    ./ps*/teacher/config.json ./ps*/teacher/log.jsonl ./ps*/student/config.json \
    ./ps*/student/log.jsonl ./ps*/student/teacher/config.json 2>/dev/null) || true
ls -la "$out" "$out"/ps*
step done
sleep 1     # let tee write the log's last lines before the call collects $OUT
