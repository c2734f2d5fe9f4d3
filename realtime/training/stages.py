"""The three training stages end to end: data -> loop -> exported checkpoint.

    run_ae       studio (+ real) frames -> autoencoder; held-out PSNR in ae_eval.json
    run_teacher  AE checkpoint + studio clips -> guided flow-matching teacher
    run_student  teacher checkpoint + studio clips -> few-step causal student

Every stage writes into its `out` directory: `train_state.pt` (exact resume),
`config.json` + `model.safetensors` (a regular checkpoint the engine can load,
re-exported at every interval checkpoint) and, unless told otherwise,
`log.jsonl`. Each stage starts from the previous stage's checkpoint (`init`).

`TrainPlan` holds the per-preset training sizes: `tiny` for tests (seconds), `cpu`
for a 2-core CPU, `gpu` for one GPU.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from realtime.model.bundle import AnimationModel
from realtime.model.checkpoint import (
    add_decoder_motion,
    add_face_sketch,
    add_fine_pose,
    deepen,
    load_checkpoint,
    read_meta,
    save_checkpoint,
)
from realtime.model.config import ModelConfig, get_preset
from realtime.training.ae import (
    AEConfig,
    ae_step,
    counterfactual_rollout_step,
    counterfactual_step,
    fold_latent_stats,
    reconstruction_psnr,
    rollout_psnr,
    rollout_step,
)
from realtime.training.data import (
    FramePool,
    LatentClips,
    encode_clips,
    load_clips,
    studio_pool,
)
from realtime.training.loop import LoopConfig, LoopResult, StepContext, train_loop
from realtime.training.rollouts import student_rollouts
from realtime.training.student import StreamPool, StudentConfig, student_step
from realtime.training.studio import counterfactual_split
from realtime.training.teacher import TeacherConfig, teacher_step

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainPlan:
    ae_steps: int
    ae_batch: int
    teacher_steps: int
    teacher_batch: int
    teacher_frames: int
    student_steps: int
    student_batch: int
    max_history: int
    max_age: int = 0                # student: longest stream life, chunks (StreamPool)
    student_gt_weight: float = 0.0  # student: pull towards the truth, fresh streams
    student_gt_weight_long: float | None = None   # ... long streams (None: the same)
    student_region_weight: float = 0.0  # ... x (1 + this) on the face and hands
    pair_weight: float = 0.0        # teacher and student: counterfactual-pair term
    teacher_sample_steps: int = 16
    guidance: float = 2.0
    ae_lr: float = 1e-3
    teacher_lr: float = 3e-4
    student_lr: float = 5e-5
    checkpoint_every: int = 100
    real_per_clip: int = 48


PLANS: dict[str, TrainPlan] = {
    "tiny": TrainPlan(ae_steps=30, ae_batch=8, teacher_steps=30, teacher_batch=2,
                      teacher_frames=4, student_steps=6, student_batch=2, max_history=3,
                      max_age=12, teacher_sample_steps=4, checkpoint_every=10, real_per_clip=4),
    # the step counts of a stage run on its own (about 1.5 h in all on 2 cores);
    # `marionette train all --hours H` replaces them with what its share of H holds
    # on the machine at hand (recipe.py). More steps help: every stage resumes with
    # --resume and a larger --steps.
    # max_age 3000 chunks: 3000 frames at the preset's K=1, as long as eval's drift stream
    "cpu": TrainPlan(ae_steps=800, ae_batch=16, teacher_steps=2500, teacher_batch=2,
                     teacher_frames=8, student_steps=400, student_batch=2, max_history=5,
                     max_age=3000, student_gt_weight=0.05, student_gt_weight_long=0.25,
                     student_lr=1e-4),
    "gpu": TrainPlan(ae_steps=20000, ae_batch=32, teacher_steps=100000, teacher_batch=16,
                     teacher_frames=16, student_steps=20000, student_batch=8, max_history=8,
                     max_age=1500, student_gt_weight=0.05, student_gt_weight_long=0.25,
                     teacher_sample_steps=32,
                     checkpoint_every=1000),
}
PLANS["cpu32"] = PLANS["cpu"]       # the same transformer and batch; see config.PRESETS


@dataclass
class StageArgs:
    preset: str
    data: Path
    out: Path
    init: Path | None = None        # previous stage's checkpoint (teacher, student)
    teacher: Path | None = None     # student: the teacher (default: see _student_teacher)
    max_age: int | None = None      # student: longest stream life (default: the plan's)
    gt_weight: float | None = None  # student: ground-truth weights (default: the plan's)
    gt_weight_long: float | None = None
    region_weight: float | None = None
    pair_weight: float | None = None    # teacher, student (default: the plan's)
    pair_relative: bool = False         # student: the pair term relative to the change
    window_noise: float | None = None   # teacher: history noise level, U(0, this)
    pose_scale: int | None = None   # teacher, student: pose maps at this x the latent size
                                    # (init upgraded by `add_fine_pose`; default: init's)
    face_sketch: bool = False       # teacher, student: init gains the face sketch plane
    depth: int | None = None        # teacher: init deepened to this many blocks (`deepen`)
    decoder_of: Path | None = None  # ae: fine-tune only this checkpoint's decoder
    on_student: bool = False        # ae: half of each batch from decoder_of's own streams
    temporal_weight: float = 0.0    # ae --on-student: weight of the frame-to-frame term
    decoder_motion: bool = False    # ae --decoder-of: the new decoder reads the motion
    counterfactual: float = 0.0     # ae: + this x the counterfactual-twin decoder loss
    counterfactual_streams: bool = False    # ae: that loss on the student's own streams
    steps: int | None = None        # total steps (default: the plan's)
    lr: float | None = None         # peak learning rate (default: the plan's)
    resume: bool = False
    json_log: Path | None = None    # default: out/log.jsonl
    device: str | None = None
    seed: int = 0
    progress: bool = True
    real_media: bool = True         # ae: mix in ../shared/media frames when present
    log_every: int = 10
    stop_at: int | None = None      # interrupt after this step (resume continues)
    time_limit_s: float | None = None
    batch_scale: int = 1            # every batch of the plan x this (a GPU: more samples
                                    # per step at about the same step rate)
    deadline: float | None = None   # time.monotonic(): plan the steps to end by then
                                    # (`LoopConfig.deadline`; `steps`, if given, is kept)


def _plan(a: StageArgs) -> TrainPlan:
    """The preset's plan, its batches x `a.batch_scale`. The `cpu` architecture on a GPU
    steps at about the rate of its batch of 2 (kernel launches, not arithmetic, bound
    it there), so a larger batch shows it many times the samples in the same time."""
    plan, k = PLANS[a.preset], a.batch_scale
    if k < 1:
        raise ValueError(f"--batch-scale must be at least 1, got {k}")
    return replace(plan, ae_batch=plan.ae_batch * k, teacher_batch=plan.teacher_batch * k,
                   student_batch=plan.student_batch * k)


def _check_resume_batch(a: StageArgs, batch: int, section: str | None = None) -> None:
    """A resumed stage must keep the batch it was trained with (`--batch-scale`): the
    step count and schedule were planned for it, and the student's streams are per
    batch row. `section`: the part of the meta the stage writes (None: all of it)."""
    path = a.out / "config.json"
    if not (a.resume and path.is_file()):
        return
    meta = read_meta(a.out)
    was = (meta if section is None else meta.get(section, {})).get("batch")
    if was is not None and int(was) != batch:
        raise ValueError(f"{a.out} was trained with batch {was}, not {batch}: resume it with "
                         f"the --batch-scale it was started with")


def _loop_cfg(a: StageArgs, steps: int, lr: float, plan: TrainPlan) -> LoopConfig:
    from realtime.training.loop import pick_device

    return LoopConfig(steps=a.steps or steps, lr=_given(a.lr, lr), seed=a.seed,
                      device=str(pick_device(a.device)), progress=a.progress,
                      log_every=a.log_every, stop_at=a.stop_at,
                      time_limit_s=a.time_limit_s,
                      deadline=a.deadline if a.steps is None else None,
                      checkpoint_every=min(plan.checkpoint_every, a.steps or steps),
                      warmup=min(50, max(1, (a.steps or steps) // 10)))


def _json_log(a: StageArgs) -> Path:
    return a.json_log or a.out / "log.jsonl"


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")


def run_ae(a: StageArgs) -> dict[str, Any]:
    """Train the autoencoder; writes `out` checkpoint (DiT untrained) + ae_eval.json.
    With `decoder_of`, only that checkpoint's decoder trains (see `_decoder_export`)."""
    from realtime.training.media import real_images

    plan, cfg = _plan(a), get_preset(a.preset)
    # under the preset: a checkpoint from before `decoder_motion` gains it at zero weight
    source = None if a.decoder_of is None else load_checkpoint(a.decoder_of, a.preset, "cpu")
    if a.decoder_motion or a.counterfactual > 0:
        if source is None:
            raise ValueError("--decoder-motion and --counterfactual train the decoder of a "
                             "checkpoint: they need --decoder-of CKPT")
        source = add_decoder_motion(source)     # at zero weight: the same decoder
    twins = twin_clips = None
    if a.counterfactual_streams and not (a.on_student and a.counterfactual > 0):
        raise ValueError("--counterfactual-streams puts the counterfactual term on the "
                         "student's streams: it needs --on-student and --counterfactual W")
    if a.counterfactual > 0:
        train_clips, twin_clips = counterfactual_split(a.data, "train", cfg)
        if not a.counterfactual_streams:        # else the streams keep the twins
            twins = studio_pool(twin_clips)
        log.info("counterfactual twins: %d training clips rendered again with their "
                 "expression and fingers played backwards", len(twin_clips))
    else:
        train_clips = load_clips(a.data, "train", cfg)
    held_clips = load_clips(a.data, "heldout_character", cfg)
    studio = studio_pool(train_clips)
    studio_held = studio_pool(held_clips, every=4)
    if a.real_media:
        real, real_held = real_images(cfg.resolution, plan.real_per_clip)
    else:
        real = real_held = torch.zeros(0, 3, cfg.resolution, cfg.resolution, dtype=torch.uint8)
    pool = studio + FramePool.undriven(real, cfg.pose_size)
    held = {"studio": studio_held, "real": FramePool.undriven(real_held, cfg.pose_size)}
    log.info("autoencoder: %d studio + %d real training frames", len(studio), len(real))
    if a.temporal_weight and not a.on_student:
        raise ValueError("--temporal-weight weighs the student's streams: it needs "
                         "--on-student")
    rollouts = held_rollouts = None
    if a.on_student:
        if source is None:
            raise ValueError("--on-student trains a decoder on its own student's latents: "
                             "it needs --decoder-of CKPT")
        log.info("streaming the student over %d training clips (2 noise seeds)",
                 len(train_clips))
        rollouts = student_rollouts(source, train_clips, (a.seed, a.seed + 1),
                                    twin_clips if a.counterfactual_streams else None)
        held_rollouts = student_rollouts(source, held_clips[:8], (a.seed,))
    if source is not None:
        model = source.float().train()
        model.requires_grad_(False)
        model.ae.encoder.eval()
        trained: torch.nn.Module = model.ae.decoder.requires_grad_(True)
    else:
        model = AnimationModel.random(cfg, seed=a.seed, zero_init=True).train()
        trained = model.ae
    ae_cfg = AEConfig(batch=plan.ae_batch, region_weight=_given(a.region_weight, 0.0),
                      temporal_weight=a.temporal_weight)
    _check_resume_batch(a, ae_cfg.batch, "ae" if source is None else "decoder_finetune")
    loop = _loop_cfg(a, plan.ae_steps, plan.ae_lr, plan)

    def plain(ctx: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        if rollouts is None:
            return ae_step(model.ae, pool, ctx, ae_cfg)
        half = replace(ae_cfg, batch=max(1, ae_cfg.batch // 2))
        loss_ae, info = ae_step(model.ae, pool, ctx, half)
        loss_st, info_st = rollout_step(model.ae, rollouts, ctx, half)
        return (loss_ae + loss_st) / 2, {**info, **{f"{k}_student": v
                                                    for k, v in info_st.items()}}

    def step(ctx: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        loss, info = plain(ctx)
        if twins is not None:
            loss_cf, info_cf = counterfactual_step(model.ae, studio, twins, ctx, ae_cfg)
        elif rollouts is not None and rollouts.twin is not None:
            loss_cf, info_cf = counterfactual_rollout_step(model.ae, rollouts, ctx, ae_cfg)
        else:
            return loss, info
        return loss + a.counterfactual * loss_cf, {
            **info, "l1_counterfactual": info_cf["l1"], "change": info_cf["change"]}

    metrics: dict[str, Any] = {}

    def export(step_no: int) -> None:
        folded = copy.deepcopy(model).cpu().eval()
        if a.decoder_of is not None:        # the encoder is as it was: nothing to fold
            metrics.update({"step": step_no, "batch": ae_cfg.batch,
                            "region_weight": ae_cfg.region_weight,
                            "on_student": a.on_student, "counterfactual": a.counterfactual,
                            "counterfactual_streams": a.counterfactual_streams,
                            "temporal_weight": ae_cfg.temporal_weight,
                            **{f"psnr_{k}_heldout": reconstruction_psnr(folded.ae, v)
                               for k, v in held.items()}})
            if held_rollouts is not None:
                metrics["psnr_student_heldout"] = rollout_psnr(folded.ae, held_rollouts)
            _decoder_export(folded, a.decoder_of, a.out, a.preset, metrics)
            return
        fold_latent_stats(folded.ae, pool.images[:: max(1, len(pool) // 512)])
        metrics.update({"step": step_no, "batch": ae_cfg.batch,
                        "region_weight": ae_cfg.region_weight,
                   **{f"psnr_{k}_heldout": reconstruction_psnr(folded.ae, v)
                      for k, v in held.items()},
                   "frames_studio_train": len(studio), "frames_real_train": len(real),
                   "frames_studio_heldout": len(studio_held),
                   "frames_real_heldout": len(held["real"])})
        save_checkpoint(folded, a.out, meta={"stage": "ae", "preset": a.preset,
                                             "trained": False, "ae": metrics})
        _write_json(a.out / "ae_eval.json", metrics)

    res = train_loop("ae", {"ae": trained}, step, loop, a.out, a.resume, _json_log(a),
                     on_checkpoint=export)
    if metrics.get("step") != res.step:
        export(res.step)
    return {**metrics, **_timing(res)}


def _decoder_export(model: AnimationModel, source: Path, out: Path, preset: str,
                    metrics: dict[str, Any]) -> None:
    """`source` (its DiT, encoder and meta) with `model`'s decoder, to `out`. The
    teacher beside a student gets the same decoder when it shares the student's
    encoder (as a teacher and the student distilled from it do: one latent space),
    so eval compares like with like."""
    save_checkpoint(model, out, meta={**read_meta(source), "decoder_finetune": dict(metrics)})
    _write_json(out / "ae_eval.json", metrics)
    if not (source / "teacher" / "config.json").is_file():
        return
    teacher = load_checkpoint(source / "teacher", preset, "cpu")
    if model.cfg.decoder_motion:
        teacher = add_decoder_motion(teacher)
    mine, theirs = model.ae.encoder.state_dict(), teacher.ae.encoder.state_dict()
    if any(not torch.equal(mine[k], theirs[k]) for k in mine):
        log.warning("%s/teacher has another encoder (latent space): not given the new "
                    "decoder, and not copied to %s", source, out)
        return
    teacher.ae.decoder.load_state_dict(model.ae.decoder.state_dict())
    save_checkpoint(teacher, out / "teacher", meta=read_meta(source / "teacher"))


def _load_trainable(path: Path, preset: str, pose_scale: int | None = None,
                    face_sketch: bool = False, depth: int | None = None) -> AnimationModel:
    """A checkpoint as a training model: fp32, DiT trainable, AE frozen; with
    `face_sketch`, reading the face sketch plane (`add_face_sketch`); with
    `pose_scale`, reading pose maps that fine (`add_fine_pose`); with `depth`, that
    many transformer blocks (`deepen`)."""
    model = load_checkpoint(path, preset, "cpu").float()
    if face_sketch:
        model = add_face_sketch(model)
    if pose_scale is not None:
        model = add_fine_pose(model, pose_scale)
    if depth is not None:
        model = deepen(model, depth)
    model.dit.requires_grad_(True).train()
    return model


def _timing(res: LoopResult) -> dict[str, Any]:
    return {"steps_done": res.step, "wall_s": round(res.wall_s, 1), "cpu_s": round(res.cpu_s, 1),
            "last": res.last_logs}


def run_teacher(a: StageArgs) -> dict[str, Any]:
    """Flow-matching teacher with CFG dropout, from the AE checkpoint `init`."""
    if a.init is None:
        raise ValueError("the teacher starts from an autoencoder checkpoint: pass --init")
    plan = _plan(a)
    model = _load_trainable(a.init, a.preset, a.pose_scale, a.face_sketch, a.depth)
    cfg = model.cfg     # the preset's, or finer pose maps or more blocks than it
    pair_weight = _given(a.pair_weight, plan.pair_weight)
    data, twins = _training_latents(model, a.data, cfg, pair_weight)
    frames = min(plan.teacher_frames, data.n_frames - data.n_frames % cfg.chunk)
    tcfg = TeacherConfig(batch=plan.teacher_batch, frames=frames,
                         steps=plan.teacher_sample_steps, guidance=plan.guidance,
                         region_weight=_given(a.region_weight, 0.0), pair_weight=pair_weight,
                         window_noise=_given(a.window_noise, 0.0))
    _check_resume_batch(a, tcfg.batch)
    loop = _loop_cfg(a, plan.teacher_steps, plan.teacher_lr, plan)
    meta = {"stage": "teacher", "preset": a.preset, "trained": True,
            "teacher_steps": tcfg.steps, "guidance": tcfg.guidance,
            "region_weight": tcfg.region_weight, "pair_weight": tcfg.pair_weight,
            "window_noise": tcfg.window_noise, "batch": tcfg.batch}

    def step(ctx: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        return teacher_step(model.dit, data, ctx, tcfg, twins)

    def export(step_no: int) -> None:
        save_checkpoint(model, a.out, meta={**meta, "step": step_no})

    res = train_loop("teacher", {"dit": model.dit}, step, loop, a.out, a.resume,
                     _json_log(a), on_checkpoint=export)
    export(res.step)
    return {**meta, **_timing(res)}


def _training_latents(model: AnimationModel, data: Path, cfg: ModelConfig,
                      pair_weight: float) -> tuple[LatentClips, LatentClips | None]:
    """The training split's latents and, when the pair term is on, its clips'
    counterfactual twins' (`studio.counterfactual_split`), frame for frame. The clips
    are loaded `compact` until they are encoded: 7 characters' 1470 clips and their
    twins at 64 px maps hold 2.9 GiB of maps instead of 11.5 (experiment log, stop 48)."""
    if pair_weight <= 0:
        return encode_clips(model.ae, load_clips(data, "train", cfg, compact=True)), None
    clips, twins = counterfactual_split(data, "train", cfg, compact=True)
    log.info("counterfactual pairs: %d training clips rendered again with their "
             "expression and fingers played backwards", len(twins))
    return encode_clips(model.ae, clips), encode_clips(model.ae, twins)


def _given(value: Any, default: Any) -> Any:
    return default if value is None else value


def _student_teacher(a: StageArgs) -> tuple[Path, dict[str, Any]]:
    """(teacher checkpoint, its meta). `init` is a teacher checkpoint (a
    new student starts from its weights) or a student one (training continues from
    it, against the teacher beside it in `init/teacher` unless `teacher` says)."""
    if a.init is None:
        raise ValueError("the student starts from a teacher (or student) checkpoint: "
                         "pass --init")
    meta = read_meta(a.init)
    teacher = a.teacher or (a.init / "teacher" if meta.get("stage") == "student" else a.init)
    if not (teacher / "config.json").is_file():
        raise FileNotFoundError(f"no teacher checkpoint at {teacher} (pass --teacher)")
    return teacher, read_meta(teacher)


def run_student(a: StageArgs) -> dict[str, Any]:
    """Self-forcing distillation of the teacher into the student (from `init`)."""
    plan = _plan(a)
    teacher_dir, info = _student_teacher(a)
    assert a.init is not None                   # checked by _student_teacher
    teacher = load_checkpoint(teacher_dir, a.preset, "cpu").float()
    student = _load_trainable(a.init, a.preset, a.pose_scale, a.face_sketch)
    # the clips' pose maps as the student reads them; a teacher at another pose_scale
    # averages them down to its own (dit.PoseEncoder)
    cfg = student.cfg
    device = torch.device(_loop_cfg(a, 1, 0.0, plan).device)
    teacher.to(device)
    student.to(device)
    pair_weight = _given(a.pair_weight, plan.pair_weight)
    if a.pair_relative and pair_weight <= 0:
        raise ValueError("--pair-relative weighs the pair term: pass --pair-weight W > 0")
    data, twins = _training_latents(teacher, a.data, cfg, pair_weight)
    scfg = StudentConfig(batch=plan.student_batch, max_history=plan.max_history,
                         max_age=_given(a.max_age, plan.max_age),
                         teacher_steps=int(info.get("teacher_steps", plan.teacher_sample_steps)),
                         guidance=float(info.get("guidance", plan.guidance)),
                         gt_weight=_given(a.gt_weight, plan.student_gt_weight),
                         gt_weight_long=_given(a.gt_weight_long, plan.student_gt_weight_long),
                         region_weight=_given(a.region_weight, plan.student_region_weight),
                         pair_weight=pair_weight, pair_relative=a.pair_relative)
    max_hist = (data.n_frames // cfg.chunk) - 1
    scfg = replace(scfg, max_history=min(scfg.max_history, max_hist))
    _check_resume_batch(a, scfg.batch)
    pool = StreamPool(student.dit, teacher.dit, data, scfg, device, twins)
    loop = _loop_cfg(a, plan.student_steps, plan.student_lr, plan)
    meta = {"stage": "student", "preset": a.preset, "trained": True,
            "teacher_steps": scfg.teacher_steps, "guidance": scfg.guidance,
            "distilled_steps": list(scfg.step_choices), "cache_write": cfg.cache_write,
            "max_age": scfg.max_age, "gt_weight": scfg.gt_weight,
            "gt_weight_long": scfg.gt_weight_long, "region_weight": scfg.region_weight,
            "pair_weight": scfg.pair_weight, "pair_relative": scfg.pair_relative,
            "batch": scfg.batch}

    def step(ctx: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        return student_step(pool, ctx, scfg)

    def export(step_no: int) -> None:
        save_checkpoint(student, a.out, meta={**meta, "step": step_no})
        # the teacher travels with the student so eval can compare against it
        save_checkpoint(teacher, a.out / "teacher", meta={**info, "stage": "teacher"})

    res = train_loop("student", {"dit": student.dit}, step, loop, a.out, a.resume,
                     _json_log(a), stateful=pool, on_checkpoint=export)
    export(res.step)
    return {**meta, **_timing(res)}


STAGES = {"ae": run_ae, "teacher": run_teacher, "student": run_student}
