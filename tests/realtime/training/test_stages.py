"""The training stages on the tiny preset: they learn, resume exactly, stream the
student's history exactly as inference does, and eval reports every metric."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from realtime.engine import StreamingEngine
from realtime.model.bundle import AnimationModel
from realtime.model.checkpoint import load_checkpoint
from realtime.model.config import get_preset
from realtime.model.dit import FINE_PLANES
from realtime.motion.types import MotionCondition
from realtime.training import evaluate
from realtime.training.data import encode_clips, load_clips
from realtime.training.loop import StepContext
from realtime.training.metrics import FACE_CHANNELS, HAND_CHANNELS
from realtime.training.stages import StageArgs, run_student, run_teacher
from realtime.training.student import (
    StreamPool,
    StudentConfig,
    new_cache,
    part_mask,
    ping_pong,
    rollout_history,
    set_reference,
    student_step,
)
from realtime.training.teacher import TeacherConfig, teacher_step


def _fixed_ctx(seed: int = 0) -> StepContext:
    """Fresh generators each call: every step draws the same batch and noise."""
    return StepContext(0, torch.device("cpu"), np.random.default_rng(seed),
                       torch.Generator().manual_seed(seed))


def _model(seed: int = 0) -> AnimationModel:
    return AnimationModel.random(get_preset("tiny"), seed=seed, zero_init=True)


def test_teacher_and_student_steps_lower_the_loss_on_a_fixed_batch(tiny_data: Path) -> None:
    cfg = get_preset("tiny")
    m = _model()
    data = encode_clips(m.ae, load_clips(tiny_data, "train", cfg))
    opt = torch.optim.Adam(m.dit.parameters(), lr=3e-3)
    tcfg = TeacherConfig(batch=2, frames=4)
    losses = []
    for _ in range(20):
        loss, _ = teacher_step(m.dit, data, _fixed_ctx(), tcfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0], losses

    teacher = AnimationModel.random(get_preset("tiny"), seed=1, zero_init=False).dit
    student = _model(seed=2).dit
    opt = torch.optim.Adam(student.parameters(), lr=1e-3)
    scfg = StudentConfig(batch=1, max_history=2, teacher_steps=3)   # fresh streams only
    losses = []
    for _ in range(8):
        pool = StreamPool(student, teacher, data, scfg, "cpu")
        loss, _ = student_step(pool, _fixed_ctx(3), scfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0], losses


def _losses(log: Path) -> list[float]:
    return [r["loss"] for r in map(json.loads, log.read_text().splitlines()) if "loss" in r]


@pytest.mark.parametrize("stage", ["teacher", "student"])
def test_resume_continues_the_same_loss_trajectory(tiny_data: Path, tiny_ckpt: Path,
                                                   tmp_path: Path, stage: str) -> None:
    """Interrupted and resumed = uninterrupted, loss for loss and weight for weight;
    for the student that includes the streams (their caches) carried across the stop."""
    run = {"teacher": run_teacher, "student": run_student}[stage]

    def args(out: Path, stop_at: int | None = None, resume: bool = False) -> StageArgs:
        return StageArgs("tiny", tiny_data, out, init=tiny_ckpt, steps=6, resume=resume,
                         progress=False, log_every=1, stop_at=stop_at, max_age=1000, seed=2)
        # (with seed 2 a long stream spans the stop: asserted at the end)

    run(args(tmp_path / "straight"))
    run(args(tmp_path / "stopped", stop_at=3))         # interrupted after step 3
    run(args(tmp_path / "stopped", resume=True))
    straight = _losses(tmp_path / "straight" / "log.jsonl")
    assert len(straight) == 6
    assert _losses(tmp_path / "stopped" / "log.jsonl") == straight
    # and the exported checkpoints are identical
    a = load_checkpoint(tmp_path / "straight").state_dict()
    b = load_checkpoint(tmp_path / "stopped").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    if stage == "student":
        logs = [json.loads(x) for x in (tmp_path / "straight" / "log.jsonl").read_text()
                .splitlines()]
        ages = [r["age_max"] for r in logs if "age_max" in r]
        # the long stream is older than one step's rollout (<= 3 chunks) after the stop
        assert min(ages[3:]) > 3, ages


def test_long_streams_carry_their_history_from_step_to_step(tiny_data: Path) -> None:
    """A long stream's caches are not rebuilt each step: its clock (and the teacher's
    mirror of it) counts every chunk it has streamed, past the ring's length."""
    cfg = get_preset("tiny")
    m = _model()
    data = encode_clips(m.ae, load_clips(tiny_data, "train", cfg))
    scfg = StudentConfig(batch=2, max_history=2, max_age=10_000, p_long=1.0, teacher_steps=2,
                         step_choices=(1,))
    pool = StreamPool(m.dit, _model(seed=1).dit, data, scfg, "cpu")
    ctx = StepContext(0, torch.device("cpu"), np.random.default_rng(0),
                      torch.Generator().manual_seed(0))
    for _ in range(12):
        student_step(pool, ctx, scfg)[0].backward()
    assert int(pool.age.min()) * cfg.chunk > cfg.window      # older than the window
    for cache in (pool.s_cache, pool.t_cache):
        assert torch.equal(cache.frame_pos, pool.age * cfg.chunk)
        assert [int(x) for x in cache.window_len] == [cfg.window] * 2
    # the state the stage checkpoints restores the pool exactly
    other = StreamPool(m.dit, _model(seed=1).dit, data, scfg, "cpu")
    other.load_state_dict(pool.state_dict())
    assert torch.equal(other.age, pool.age) and torch.equal(other.s_cache.k, pool.s_cache.k)


@pytest.mark.parametrize("p_long", [0.0, 1.0])
def test_ground_truth_pull_is_weighted_by_stream_kind(tiny_data: Path, p_long: float) -> None:
    """Fresh streams are pulled towards the truth with `gt_weight`, long streams (where
    drift builds up) with `gt_weight_long`, on top of the distillation loss."""
    m = _model()
    data = encode_clips(m.ae, load_clips(tiny_data, "train", get_preset("tiny")))
    scfg = StudentConfig(batch=1, max_history=1, max_age=100, p_long=p_long, teacher_steps=2,
                         step_choices=(1,), gt_weight=0.1, gt_weight_long=0.7)
    pool = StreamPool(m.dit, _model(seed=1).dit, data, scfg, "cpu")
    loss, logs = student_step(pool, _fixed_ctx(4), scfg)
    assert bool(pool.life[0] > 0) == (p_long == 1.0)
    weight = 0.7 if p_long == 1.0 else 0.1
    assert logs["gt"] > 0
    assert float(loss.detach()) == pytest.approx(logs["distill"] + weight * logs["gt"], rel=1e-5)


def test_region_weight_pulls_harder_on_face_and_hands_only(tiny_data: Path) -> None:
    # the mask: the drawn head (and a one-pixel margin) at latent size, nothing else
    pose = torch.zeros(1, 1, 16, 16, 16)
    pose[0, 0, FACE_CHANNELS[0], 4:8, 6:10] = 1.0
    mask = part_mask(pose, 8)[0, 0, 0]
    assert mask[1:5, 2:6].all() and mask.sum() == 16

    m = _model()
    data = encode_clips(m.ae, load_clips(tiny_data, "train", get_preset("tiny")))
    plain = StudentConfig(batch=1, max_history=0, teacher_steps=2, step_choices=(1,),
                          gt_weight=1.0)
    logs = {}
    for name, cfg in (("plain", plain), ("region", dataclasses.replace(plain, region_weight=3.0))):
        pool = StreamPool(m.dit, _model(seed=1).dit, data, cfg, "cpu")
        logs[name] = student_step(pool, _fixed_ctx(5), cfg)[1]
    assert logs["region"]["distill"] == logs["plain"]["distill"]      # same stream, noise
    assert logs["region"]["gt"] > logs["plain"]["gt"]


def test_teacher_region_weight_adds_the_face_and_hand_error_only(tiny_data: Path) -> None:
    m = _model(seed=3)
    m.dit.initialize_weights(zero_init=False)         # a non-zero prediction
    data = encode_clips(m.ae, load_clips(tiny_data, "train", get_preset("tiny")))
    plain = TeacherConfig(batch=2, frames=4)
    loss = {r: float(teacher_step(m.dit, data, _fixed_ctx(7),
                                  dataclasses.replace(plain, region_weight=r))[0].detach())
            for r in (0.0, 2.0, 4.0)}
    assert loss[2.0] > loss[0.0]
    # linear in R: the extra term is R x the (fixed) error inside the mask
    assert loss[4.0] - loss[0.0] == pytest.approx(2 * (loss[2.0] - loss[0.0]), rel=1e-4)


def test_training_streams_play_clips_back_and_forth_continuously() -> None:
    idx = ping_pong(torch.arange(100), 8)
    assert int(idx.min()) == 0 and int(idx.max()) == 7
    assert bool(((idx[1:] - idx[:-1]).abs() == 1).all())     # no jumps, no stalls
    assert idx[:16].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 6, 5, 4, 3, 2, 1, 0, 1]


def test_student_training_writes_the_cache_exactly_as_inference(tiny_data: Path,
                                                                 tiny_ckpt: Path) -> None:
    model = load_checkpoint(tiny_ckpt)
    cfg = model.cfg
    clip = load_clips(tiny_data, "train", cfg, limit=1)[0]
    n = len(clip.frames) - len(clip.frames) % cfg.chunk
    seed = 5

    engine = StreamingEngine(model, seed=seed)
    engine.set_reference(list(clip.reference))
    engine.push([MotionCondition(i, 0.0, clip.pose[i], clip.face[i], clip.presence[i])
                 for i in range(n)])
    assert engine.settle()          # the last chunk's write waits for its frames to leave

    batch = encode_clips(model.ae, [clip]).window(0, 0, n)
    cache = new_cache(model.dit, 1, "cpu")
    set_reference(model.dit, cache, batch.ref)
    rollout_history(model.dit, cache, None, None, batch, n // cfg.chunk, cfg.steps,
                    torch.Generator().manual_seed(seed))
    assert int(cache.window_len[0]) == min(n, cfg.window)
    for name in ("k", "v", "sink_len", "ring_start", "window_len"):
        torch.testing.assert_close(getattr(cache, name), getattr(engine.cache, name),
                                   atol=1e-5, rtol=1e-5)


def test_eval_reports_every_metric_finite(tiny_data: Path, tiny_ckpt: Path,
                                          tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    evaluate.add_arguments(parser)
    out = tmp_path / "eval.json"
    args = parser.parse_args(["--checkpoint", str(tiny_ckpt), "--data", str(tiny_data),
                              "--clips", "2", "--clip-frames", "8", "--frames", "24",
                              "--drift-streams", "2", "--steps", "1", "--json", str(out)])
    assert evaluate.run(args) == 0
    res = json.loads(out.read_text())
    assert res["steps"] == 1                # as asked, not the checkpoint's default (2)
    for key in ("psnr", "ssim", "face_psnr", "hand_psnr", "figure_psnr", "scene_psnr",
                "flicker", "drift_db", "face_follow_db", "hand_follow_db", "face_response",
                "expression_response", "ms_per_frame", "late_psnr", "late_face_psnr",
                "late_figure_psnr", "figure_drift_db"):
        assert math.isfinite(res[key]), key
    parts = {"face", "expression", "hand"}
    assert set(res["response"]) == set(res["teacher_response"]) == parts
    assert set(res["ae_response"]) == set(res["decoder_response"]) == parts
    assert res["response"]["face"]["gt_rms"] > 0          # the held clips differ
    assert set(res["student_vs_teacher_db"]) == {"1", "2", "4"}
    assert all(math.isfinite(v) for v in res["student_vs_teacher_db"].values())
    assert res["drift"]["shortened"] is True and res["drift"]["frames"] == 24
    per_stream = res["drift"]["per_stream_db"]
    assert len(per_stream) == 2 and math.isclose(np.mean(per_stream), res["drift_db"])
    assert 0.0 <= res["ssim"] <= 1.0
    history = res["history"]
    assert math.isfinite(history["psnr_true_history"])
    assert math.isfinite(history["psnr_no_history"])


def test_eval_alone_scores_the_autoencoder_or_the_teacher_as_the_full_eval_does(
        tiny_data: Path, tiny_ckpt: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # stop 38 trained autoencoders and teachers with no student: `--alone` measures them
    # on the same clips, with the same noise, as the full evaluation measures its parts
    parser = argparse.ArgumentParser()
    evaluate.add_arguments(parser)
    common = ["--data", str(tiny_data), "--clips", "2", "--clip-frames", "8"]

    def run(*extra: str) -> dict:
        out = tmp_path / f"{len(list(tmp_path.iterdir()))}.json"
        assert evaluate.run(parser.parse_args([*common, *extra, "--json", str(out)])) == 0
        return json.loads(out.read_text())

    full = run("--checkpoint", str(tiny_ckpt), "--frames", "24", "--drift-streams", "1")
    ae = run("--checkpoint", str(tiny_ckpt), "--alone", "ae")
    teacher = run("--checkpoint", str(tiny_ckpt / "teacher"), "--alone", "teacher")
    for part in ("expression", "hand"):
        assert ae["ae_response"][part] == pytest.approx(full["ae_response"][part])
        assert teacher["teacher_response"][part] == pytest.approx(
            full["teacher_response"][part])
    assert teacher["psnr"] == pytest.approx(full["teacher_metrics"]["psnr"])
    # the full evaluation splits by character too (its held-out characters): the same
    # split as --alone's for the teacher and the autoencoder, and one for the student
    def flat(split: dict) -> dict:
        return {(p, c, k): v for p in ("expression", "hand")
                for c, m in split[p].items() for k, v in m.items()}

    assert flat(teacher["teacher_response_by_character"]) == pytest.approx(
        flat(full["teacher_response_by_character"]))
    assert flat(ae["ae_response_by_character"]) == pytest.approx(
        flat(full["ae_response_by_character"]))
    student = full["response_by_character"]["expression"]
    assert sum(v["clips"] for v in student.values()) == full["clips"]
    assert all(name.startswith("heldout-char") for name in student)
    assert math.isfinite(ae["psnr"]) and ae["psnr"] != pytest.approx(teacher["psnr"])
    # new clips of the training characters (stop 42: does a teacher follow on the
    # characters it trained on?) are other clips, with their own responses
    own = run("--checkpoint", str(tiny_ckpt / "teacher"), "--alone", "teacher",
              "--split", "heldout_motion")
    assert own["split"] == "heldout_motion"
    assert set(own["teacher_response"]) == {"expression", "hand"}
    assert own["psnr"] != pytest.approx(teacher["psnr"])
    # split by character (stop 44): every clip counted once, under its own character
    split = own["teacher_response_by_character"]["expression"]
    assert sum(v["clips"] for v in split.values()) == 2
    assert all(name.startswith("train-char") for name in split)
    ae_split = ae["ae_response_by_character"]["hand"]
    assert sum(v["clips"] for v in ae_split.values()) == 2
    args = parser.parse_args([*common, "--checkpoint", str(tiny_ckpt), "--alone", "ae",
                              "--split", "train"])
    assert evaluate.run(args) == 2
    assert "--split one of heldout_both" in capsys.readouterr().err


def test_responses_by_character_tell_a_following_character_from_one_that_ignores() -> None:
    # the pooled response mixes the characters; split, it says which one follows
    from realtime.training.data import Clip

    rng = np.random.default_rng(0)
    pose = np.zeros((3, 16, 8, 8), np.float32)
    pose[:, FACE_CHANNELS[0], 2:5, 2:5] = 1.0

    def clip(name: str) -> Clip:
        frames = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
        return Clip(name, "m", frames[:1], frames, pose, np.zeros((3, 12), np.float32),
                    np.ones((3, 4), np.float32))

    clips = [clip("a"), clip("b"), clip("a")]
    held = [clip(c.character) for c in clips]
    frozen = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    # "a" renders exactly the truth, clip and held twin alike; "b" renders one frame
    # whatever its face does
    outs = [c.frames if c.character == "a" else frozen for c in clips]
    held_outs = [h.frames if h.character == "a" else frozen for h in held]
    split = evaluate.by_character(outs, held_outs, clips, held, FACE_CHANNELS)
    pooled = evaluate.response(outs, held_outs, clips, held, FACE_CHANNELS)
    assert {k: v["clips"] for k, v in split.items()} == {"a": 2, "b": 1}
    assert split["a"]["gain"] == pytest.approx(1.0) and split["a"]["cos"] == pytest.approx(1.0)
    assert split["b"]["gain"] == 0.0
    assert 0.0 < pooled["gain"] < 1.0


def test_fresh_clips_of_each_held_kind_draw_its_characters_and_performers(
        tiny_data: Path) -> None:
    from realtime.avatars.dataset import plan
    from realtime.training.studio import dataset_config, heldout_clips

    plans = plan(dataset_config(tiny_data), [])

    def of(split: str, field: str) -> set[str]:
        return {str(getattr(p, field)) for p in plans if p.split == split}

    train_chars, unseen_chars = of("train", "character"), of("heldout_character", "character")
    train_srcs, unseen_srcs = of("train", "source"), of("heldout_motion", "source")
    assert not train_chars & unseen_chars and not train_srcs & unseen_srcs
    cfg = get_preset("tiny")
    for kind, chars, sources, seen in (("heldout_both", unseen_chars, unseen_srcs, "heldout"),
                                       ("heldout_character", unseen_chars, train_srcs, "heldout"),
                                       ("heldout_motion", train_chars, unseen_srcs, "train")):
        clips = heldout_clips(tiny_data, cfg, 3, 4, kind=kind)
        assert {c.character for c in clips} <= {f"{seen}-char{i}" for i in chars}, kind
        assert {c.motion for c in clips} <= sources, kind
    with pytest.raises(ValueError, match="no fresh clips of kind 'train'"):
        heldout_clips(tiny_data, cfg, 1, 4, kind="train")


def test_eval_beside_a_teacher_on_finer_maps_draws_the_shared_clips_at_its_size(
        tiny_data: Path, tiny_ckpt: Path, tmp_path: Path) -> None:
    # stop 35: a teacher trained with --pose-scale 4 beside the shipped (2x) student;
    # the clips both run on must be drawn at 4x (the student averages them down), or
    # the teacher refuses them
    from realtime.model.checkpoint import add_fine_pose, save_checkpoint

    teacher = add_fine_pose(load_checkpoint(tiny_ckpt / "teacher", preset="tiny"), 4)
    save_checkpoint(teacher, tmp_path / "t4")
    parser = argparse.ArgumentParser()
    evaluate.add_arguments(parser)
    out = tmp_path / "eval.json"
    args = parser.parse_args(["--checkpoint", str(tiny_ckpt), "--teacher", str(tmp_path / "t4"),
                              "--data", str(tiny_data), "--clips", "1", "--clip-frames", "8",
                              "--frames", "24", "--drift-streams", "1", "--steps", "1",
                              "--json", str(out)])
    assert evaluate.run(args) == 0
    res = json.loads(out.read_text())
    assert res["pose_maps_px"] == 2 * get_preset("tiny").pose_size
    assert math.isfinite(res["teacher_metrics"]["hand_psnr"])
    assert math.isfinite(res["teacher_response"]["hand"]["gain"])
    assert all(math.isfinite(v) for v in res["student_vs_teacher_db"].values())


def test_eval_refuses_a_missing_dataset_with_a_reason(tiny_ckpt: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str],
                                                     ) -> None:
    parser = argparse.ArgumentParser()
    evaluate.add_arguments(parser)
    args = parser.parse_args(["--checkpoint", str(tiny_ckpt), "--data", str(tmp_path / "none"),
                              "--json", str(tmp_path / "eval.json")])
    assert evaluate.run(args) == 2
    assert "is not a studio dataset" in capsys.readouterr().err
    assert not (tmp_path / "eval.json").exists()


def test_eval_refuses_steps_the_student_was_not_distilled_for(
        tiny_data: Path, tiny_ckpt: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    evaluate.add_arguments(parser)
    args = parser.parse_args(["--checkpoint", str(tiny_ckpt), "--data", str(tiny_data),
                              "--steps", "8", "--json", str(tmp_path / "eval.json")])
    assert evaluate.run(args) == 2
    assert "steps must be in 1..4, got 8" in capsys.readouterr().err
    assert not (tmp_path / "eval.json").exists()


def test_decoder_response_is_what_the_decoder_draws_from_the_motion_alone(
        tiny_data: Path, tiny_ckpt: Path) -> None:
    """`decoder_response` decodes a clip's own latents with the held clip's motion:
    with its motion path shut (as a checkpoint gains it) the decoder draws the same
    frames, with the path open it draws other frames exactly for the clips whose
    held motion differs."""
    from realtime.model.checkpoint import load_model
    from realtime.training.studio import heldout_clips

    model = load_model(tiny_ckpt)
    assert model.cfg.decoder_motion
    clips = heldout_clips(tiny_data, model.cfg, 2, 8)
    held = heldout_clips(tiny_data, model.cfg, 2, 8, evaluate.hold_fingers)
    assert all(np.array_equal(evaluate.reconstruct(model, c),
                              evaluate.reconstruct(model, c, motion_of=h))
               for c, h in zip(clips, held, strict=True))
    with torch.no_grad():                   # open the motion path (it starts at zero)
        for conv in model.ae.decoder.motion_out:
            assert isinstance(conv, torch.nn.Conv2d)
            torch.nn.init.normal_(conv.weight, std=0.5)
    moved = [evaluate.reconstruct(model, c, motion_of=h)
             for c, h in zip(clips, held, strict=True)]
    opened = [evaluate.reconstruct(model, c) for c in clips]
    differs = [not np.array_equal(a, b) for a, b in zip(opened, moved, strict=True)]
    fingers_held = [not np.array_equal(c.pose, h.pose)
                    for c, h in zip(clips, held, strict=True)]
    assert differs == fingers_held and any(differs)


def test_true_history_chunks_see_the_truth_s_window_and_only_it(tiny_data: Path,
                                                               tiny_ckpt: Path) -> None:
    """`on_true_history` samples each chunk from the ground truth's previous window:
    change the frames before a chunk and its output changes; without the window it
    does not; the result covers frames W.. of the clip."""
    from realtime.model.checkpoint import load_model
    from realtime.training.studio import heldout_clips

    model = load_model(tiny_ckpt)
    clip = heldout_clips(tiny_data, model.cfg, 1, 8)[0]
    W = model.cfg.window
    other = dataclasses.replace(clip, frames=clip.frames.copy())
    other.frames[:W] = 255 - other.frames[:W]               # a different window
    true = evaluate.on_true_history(model, clip, 2, 0)
    assert len(true) == 8 - W
    assert not np.array_equal(true, evaluate.on_true_history(model, other, 2, 0))
    alone = evaluate.on_true_history(model, clip, 2, 0, history=False)
    assert np.array_equal(alone, evaluate.on_true_history(model, other, 2, 0, history=False))
    assert not np.array_equal(alone, true)


def test_follow_scores_what_each_part_s_own_motion_changes(tiny_data: Path,
                                                           tiny_ckpt: Path) -> None:
    """face/hand_follow_db compare the same streams with and without that part's motion:
    exactly 0 when there is nothing to take away, not 0 when there is."""
    from realtime.model.checkpoint import load_model
    from realtime.training.studio import heldout_clips

    model = load_model(tiny_ckpt)
    clip = heldout_clips(tiny_data, model.cfg, 1, 8)[0]
    assert np.abs(np.diff(clip.face, axis=0)).max() > 0       # the expression moves
    rows = [evaluate.frame_metrics(evaluate.run_student(model, clip, 2, 0).frames, clip)]
    moving = evaluate.follow(model, [clip], rows, 2, 0)
    assert moving["face_follow_db"] != 0 and moving["hand_follow_db"] != 0
    # a clip that already holds its first expression and has no finger maps
    still = evaluate.without_fingers(evaluate.without_expression(clip))
    rows = [evaluate.frame_metrics(evaluate.run_student(model, still, 2, 0).frames, clip)]
    assert evaluate.follow(model, [still], rows, 2, 0)["face_follow_db"] == 0.0
    fingerless = evaluate.without_fingers(clip)
    assert not fingerless.pose[:, list(HAND_CHANNELS)].any()
    assert not fingerless.presence[:, 2:].any() and fingerless.presence[:, :2].any()


@pytest.mark.parametrize("n", [1])
def test_heldout_eval_clips_are_unseen_characters(tiny_data: Path, n: int) -> None:
    from realtime.training.studio import heldout_clips

    cfg = get_preset("tiny")
    train_chars = {c.character for c in load_clips(tiny_data, "train", cfg)}
    clips = heldout_clips(tiny_data, cfg, n, 4)
    assert len(clips) == n and clips[0].frames.shape == (4, 32, 32, 3)
    assert clips[0].pose.shape == (4, 16, cfg.pose_size, cfg.pose_size)
    assert not {c.character for c in clips} & train_chars


def test_eval_scores_the_figure_and_the_scene_apart(tiny_data: Path) -> None:
    """Held-out clips know which pixels are the character: an output with the right
    scene and a wrong figure scores high on the scene and low on the figure, and the
    other way round; whole-frame PSNR could not tell the two apart."""
    from realtime.training.evaluate import frame_metrics
    from realtime.training.studio import heldout_clips

    clip = heldout_clips(tiny_data, get_preset("tiny"), 1, 4)[0]
    assert clip.figure is not None and clip.figure.shape == clip.frames.shape[:3]
    inside = clip.figure >= 128
    assert 0.02 < inside.mean() < 0.7                   # a figure, on a scene
    # where the coverage says "figure", the frame is not the background: the frame
    # differs there from the same frame's scene pixels far more than across the scene
    gt = clip.frames.astype(np.float32)
    scene_colour = np.median(gt[~inside], axis=0)
    assert np.abs(gt[inside] - scene_colour).mean() > 3 * np.abs(gt[~inside] - scene_colour).mean()

    grey = np.full_like(clip.frames, 128)
    wrong_figure = np.where(inside[..., None], grey, clip.frames)
    wrong_scene = np.where(inside[..., None], clip.frames, grey)
    a, b = frame_metrics(wrong_figure, clip), frame_metrics(wrong_scene, clip)
    assert a["scene_psnr"] >= 99 and a["figure_psnr"] < 30
    assert b["figure_psnr"] >= 99 and b["scene_psnr"] < 30
    # clips read from a dataset carry no coverage: the two are unknown, not made up
    plain = dataclasses.replace(clip, figure=None)
    assert np.isnan(frame_metrics(clip.frames, plain)["figure_psnr"])


def test_held_clips_change_only_that_part_of_the_ground_truth(tiny_data: Path) -> None:
    """The re-rendered clip with the expression (fingers) held: the first frame is the
    same picture, the driving expression (finger maps) stop moving, and the body is
    where it was."""
    from realtime.training.studio import heldout_clips

    cfg = get_preset("tiny")
    true = heldout_clips(tiny_data, cfg, 1, 8)[0]
    face = heldout_clips(tiny_data, cfg, 1, 8, evaluate.hold_expression)[0]
    hand = heldout_clips(tiny_data, cfg, 1, 8, evaluate.hold_fingers)[0]
    assert np.array_equal(face.frames[0], true.frames[0])
    body = [i for i in range(16) if i not in HAND_CHANNELS]
    assert np.array_equal(face.pose[:, body], true.pose[:, body])      # body unchanged
    assert np.array_equal(hand.face, true.face)                        # face unchanged
    # the held part's driving signal moves less than the true one (augmentation noise
    # still jitters it, as it jitters everything)
    def motion(x: np.ndarray) -> float:
        return float(np.abs(np.diff(x, axis=0)).mean())
    assert motion(face.face) < motion(true.face)
    assert not np.array_equal(face.frames, true.frames)                # it showed


def test_holding_the_expression_alone_leaves_the_head_turning() -> None:
    from realtime.avatars.motion import ProceduralMotion
    from realtime.motion.types import FACE_FEATURES

    motion = ProceduralMotion(3).clip(30, 0)
    held = np.stack([m.face for m in evaluate.hold_expression_only(motion)])
    true = np.stack([m.face for m in motion])
    rot = [FACE_FEATURES.index(f) for f in evaluate.HEAD_ROTATION]
    expr = [i for i in range(len(FACE_FEATURES)) if i not in rot]
    assert np.array_equal(held[:, rot], true[:, rot])                   # still turns
    assert np.ptp(true[:, expr], axis=0).max() > 0                      # it did move ...
    assert np.array_equal(held[:, expr], np.repeat(true[:1, expr], 30, axis=0))  # ... held


def test_response_is_one_for_the_truth_and_zero_for_an_output_that_ignores_the_part(
        tiny_data: Path) -> None:
    from realtime.training.studio import heldout_clips

    cfg = get_preset("tiny")
    true = heldout_clips(tiny_data, cfg, 2, 8)
    held = heldout_clips(tiny_data, cfg, 2, 8, evaluate.hold_expression)
    frames = [c.frames for c in true]
    perfect = evaluate.response(frames, [c.frames for c in held], true, held, FACE_CHANNELS)
    assert perfect["gain"] == pytest.approx(1.0) and perfect["cos"] == pytest.approx(1.0)
    assert perfect["gt_rms"] > 0
    deaf = evaluate.response(frames, frames, true, held, FACE_CHANNELS)
    assert deaf["gain"] == 0.0 and deaf["out_rms"] == 0.0
    half = evaluate.response([((c.frames.astype(np.int16) + h.frames) // 2).astype(np.uint8)
                              for c, h in zip(true, held, strict=True)],
                             [h.frames for h in held], true, held, FACE_CHANNELS)
    assert half["gain"] == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize("before_motion", [False, True])
def test_decoder_fine_tune_keeps_the_latent_space_and_dresses_the_teacher_too(
        tiny_data: Path, tmp_path: Path, before_motion: bool) -> None:
    """`train ae --decoder-of CKPT`: only the decoder moves, so CKPT's DiT (and the
    teacher beside it, which shares its encoder) still speak the same latents; both
    come out with the new decoder, and CKPT's meta is kept (a student stays one). A
    checkpoint from before `decoder_motion` comes out with it, and using it."""
    from realtime.model.checkpoint import save_checkpoint
    from realtime.training.stages import run_ae

    src = tmp_path / "src"
    cfg = get_preset("tiny").with_(decoder_motion=not before_motion)
    student = AnimationModel.random(cfg, seed=0, zero_init=True)
    teacher = AnimationModel.random(cfg, seed=1, zero_init=True)
    teacher.ae.load_state_dict(student.ae.state_dict())    # distilled from it: one AE
    save_checkpoint(student, src, meta={"stage": "student", "trained": True})
    save_checkpoint(teacher, src / "teacher", meta={"stage": "teacher", "guidance": 2.0})
    out = tmp_path / "dec"
    run_ae(StageArgs("tiny", tiny_data, out, decoder_of=src, steps=4, progress=False,
                     real_media=False, on_student=before_motion))
    a, b = load_checkpoint(src).state_dict(), load_checkpoint(out).state_dict()
    for k in a:
        if not k.startswith("ae.decoder."):
            assert torch.equal(a[k], b[k]), k               # DiT and encoder untouched
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("ae.decoder."))
    assert any(b[k].abs().max() > 0 for k in b if k.startswith("ae.decoder.motion_out"))
    t_old = load_checkpoint(src / "teacher").state_dict()
    t_new = load_checkpoint(out / "teacher").state_dict()
    for k in t_new:
        assert torch.equal(t_new[k], b[k] if k.startswith("ae.") else t_old[k]), k
    meta = json.loads((out / "config.json").read_text())["meta"]
    assert meta["stage"] == "student" and meta["trained"] is True
    assert meta["decoder_finetune"]["step"] == 4
    # half of each batch from the student's own streams: their held-out PSNR reported
    assert ("psnr_student_heldout" in meta["decoder_finetune"]) == before_motion
    assert json.loads((out / "teacher" / "config.json").read_text())["meta"]["guidance"] == 2.0

    # a teacher with another encoder lives in another latent space: left out
    save_checkpoint(_model(seed=2), src / "teacher", meta={"stage": "teacher"})
    run_ae(StageArgs("tiny", tiny_data, tmp_path / "dec2", decoder_of=src, steps=2,
                     progress=False, real_media=False))
    assert not (tmp_path / "dec2" / "teacher").exists()


def test_student_rollouts_are_the_latents_a_session_decodes(tiny_data: Path,
                                                            tiny_ckpt: Path) -> None:
    """`train ae --on-student` teaches the decoder on `student_rollouts`: decoding them
    with their motion gives exactly the frames the engine streams for the same seed."""
    from realtime.engine import tensor_to_images
    from realtime.model.planes import motion_planes
    from realtime.training.rollouts import student_rollouts

    model = load_checkpoint(tiny_ckpt, "tiny")
    clip = load_clips(tiny_data, "train", model.cfg)[0]
    pool = student_rollouts(model, [clip], (7,))
    assert len(pool) == len(clip.frames)
    assert pool.has_next.tolist() == [True] * (len(pool) - 1) + [False]   # one stream
    assert np.array_equal(pool.truth.images.permute(0, 2, 3, 1).numpy(), clip.frames)
    streamed = evaluate.run_student(model, clip, model.cfg.steps, 7).frames
    with torch.no_grad():
        planes = motion_planes(torch.from_numpy(clip.pose), torch.from_numpy(clip.face),
                               torch.from_numpy(clip.presence))
        decoded = tensor_to_images(model.ae.decode(pool.latents, planes))
    assert np.array_equal(decoded, streamed)


def test_on_student_needs_the_checkpoint_whose_student_streams(tiny_data: Path,
                                                               tmp_path: Path) -> None:
    from realtime.training.stages import run_ae

    with pytest.raises(ValueError, match="--decoder-of"):
        run_ae(StageArgs("tiny", tiny_data, tmp_path / "x", on_student=True, steps=2,
                         progress=False, real_media=False))
    with pytest.raises(ValueError, match="--on-student"):      # nothing to weigh
        run_ae(StageArgs("tiny", tiny_data, tmp_path / "y", temporal_weight=2.0, steps=2,
                         progress=False, real_media=False))


def test_counterfactual_decoder_training_records_itself_and_needs_a_checkpoint(
        tiny_data: Path, tiny_ckpt: Path, tmp_path: Path) -> None:
    """`train ae --decoder-of CKPT --counterfactual W`: the decoder of CKPT, reading the
    motion, trained also on latents paired with their twins' motion; the log carries
    the twin terms, the checkpoint what it was trained with. Without a checkpoint
    there is no decoder to fine-tune: a clear error."""
    from realtime.training.stages import run_ae

    out = tmp_path / "cf"
    run_ae(StageArgs("tiny", tiny_data, out, decoder_of=tiny_ckpt, counterfactual=2.0,
                     steps=3, progress=False, real_media=False, log_every=1))
    rows = [json.loads(r) for r in (out / "log.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss" in r]
    assert steps and all(r["change"] >= 0 and r["l1_counterfactual"] > 0 for r in steps)
    meta = json.loads((out / "config.json").read_text())["meta"]
    assert meta["decoder_finetune"]["counterfactual"] == 2.0
    assert meta["decoder_finetune"]["counterfactual_streams"] is False   # on encodings
    assert load_checkpoint(out).cfg.decoder_motion
    with pytest.raises(ValueError, match="--decoder-of"):
        run_ae(StageArgs("tiny", tiny_data, tmp_path / "x", counterfactual=1.0, steps=1,
                         progress=False, real_media=False))


def test_counterfactual_on_streams_records_itself_and_needs_the_streams(
        tiny_data: Path, tiny_ckpt: Path, tmp_path: Path) -> None:
    """`--counterfactual-streams` moves the twin term onto CKPT's own streams: it
    needs them (`--on-student`) and a weight; the checkpoint says it was used."""
    from realtime.training.stages import run_ae

    out = tmp_path / "cfs"
    run_ae(StageArgs("tiny", tiny_data, out, decoder_of=tiny_ckpt, on_student=True,
                     counterfactual=2.0, counterfactual_streams=True, steps=2,
                     progress=False, real_media=False, log_every=1))
    rows = [json.loads(r) for r in (out / "log.jsonl").read_text().splitlines()]
    assert all(r["change"] >= 0 for r in rows if "loss" in r)
    meta = json.loads((out / "config.json").read_text())["meta"]["decoder_finetune"]
    assert meta["counterfactual_streams"] is True and meta["on_student"] is True
    for bad in ({"counterfactual": 2.0}, {"on_student": True}):
        with pytest.raises(ValueError, match="--counterfactual-streams"):
            run_ae(StageArgs("tiny", tiny_data, tmp_path / "x", decoder_of=tiny_ckpt,
                             counterfactual_streams=True, steps=1, progress=False,
                             real_media=False, **bad))


def test_batch_scale_and_budget_reach_the_student_and_a_resume_keeps_them(
        tiny_data: Path, tiny_ckpt: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`--batch-scale N` trains on N times the plan's streams per step (what a GPU run
    of the cpu architecture uses), `--budget MIN` plans the step count from the rate it
    measures, and resuming with another batch is refused instead of changing what the
    planned schedule was for."""
    from realtime.cli import main
    from realtime.training.stages import PLANS

    out = tmp_path / "s"
    base = ["train", "student", "--preset", "tiny", "--data", str(tiny_data), "--init",
            str(tiny_ckpt), "--out", str(out), "--no-progress"]
    assert main(base + ["--batch-scale", "2", "--budget", "0.05"]) == 0
    meta = json.loads((out / "config.json").read_text())["meta"]
    assert meta["batch"] == 2 * PLANS["tiny"].student_batch
    events = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert any(e.get("event") == "planned" for e in events)
    capsys.readouterr()
    assert main(base + ["--resume", "--steps", str(meta["step"] + 1)]) == 2
    assert "trained with batch 4, not 2" in capsys.readouterr().err
    assert main(base + ["--batch-scale", "2", "--steps", "3", "--budget", "1"]) == 2
    assert "leave out --steps" in capsys.readouterr().err


def test_training_gradients_are_the_same_where_the_triton_kernels_run(
        tiny_data: Path) -> None:
    """On a GPU every entry point runs its Triton kernel, and those are forward-only.
    A student step there must still train every weight as it does on the CPU: with the
    kernels forced (as on CUDA, here under Triton's interpreter), the loss and every
    gradient of the DiT equal the PyTorch path's; without gradients the kernels run."""
    from kernels._dispatch import backend_for, force_backend

    cfg = get_preset("tiny")
    data = encode_clips(_model().ae, load_clips(tiny_data, "train", cfg))
    teacher = AnimationModel.random(cfg, seed=1, zero_init=False).dit
    scfg = StudentConfig(batch=1, max_history=2, teacher_steps=2)

    def grads(backend: str | None) -> tuple[float, dict[str, torch.Tensor]]:
        student = AnimationModel.random(cfg, seed=2, zero_init=False).dit
        with force_backend(backend):      # type: ignore[arg-type]
            pool = StreamPool(student, teacher, data, scfg, "cpu")
            loss, _ = student_step(pool, _fixed_ctx(3), scfg)
            loss.backward()
        return float(loss.detach()), {n: p.grad.clone() for n, p in student.named_parameters()
                             if p.grad is not None}

    loss_t, want = grads(None)
    loss_k, got = grads("triton")
    assert loss_k == pytest.approx(loss_t, rel=1e-4)
    assert want.keys() == got.keys() and "blocks.0.ada.weight" in want
    for n in want:
        torch.testing.assert_close(got[n], want[n], rtol=2e-3, atol=1e-5, msg=n)
    with force_backend("triton"), torch.no_grad():
        assert backend_for(torch.zeros(1, requires_grad=True)) == "triton"
        # bf16 autocast (training on CUDA) mixes dtypes the kernels do not take
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert backend_for(torch.zeros(1)) == "torch"


# the only test under autocast, so the first place torch would warn (once a process)
# that bf16 activations met a float32 norm weight and took the unfused path
@pytest.mark.filterwarnings("error:Mismatch dtype between input and weight")
def test_teacher_and_student_steps_run_under_bf16_autocast_as_on_cuda(
        tiny_data: Path) -> None:
    """Training on CUDA runs under bf16 autocast with the kernels dispatched as on a GPU:
    bf16 activations meet fp32 weights and KV caches. Here the same on the CPU (the
    kernels forced, autocast on the CPU): each step's loss is the fp32 one to bf16
    precision, the same weights get a gradient, every one finite, and no norm falls
    back to its unfused path for want of a weight in the activations' dtype."""
    from kernels._dispatch import force_backend

    cfg = get_preset("tiny")
    m = AnimationModel.random(cfg, seed=0, zero_init=False)
    data = encode_clips(m.ae, load_clips(tiny_data, "train", cfg))
    scfg = StudentConfig(batch=2, max_history=2, teacher_steps=2, max_age=10)

    def step(stage: str, bf16: bool) -> tuple[float, dict[str, torch.Tensor]]:
        dit = AnimationModel.random(cfg, seed=2, zero_init=False).dit
        with force_backend("triton" if bf16 else None), \
                torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            if stage == "teacher":
                loss, _ = teacher_step(dit, data, _fixed_ctx(), TeacherConfig(batch=2, frames=4))
            else:
                pool = StreamPool(dit, m.dit, data, scfg, "cpu")
                loss, _ = student_step(pool, _fixed_ctx(3), scfg)
        loss.backward()
        return float(loss.detach()), {n: p.grad for n, p in dit.named_parameters()
                                      if p.grad is not None}

    for stage in ("teacher", "student"):
        (want, g32), (got, g16) = step(stage, False), step(stage, True)
        assert got == pytest.approx(want, rel=0.05), stage
        assert g16.keys() == g32.keys() and g16, stage
        assert all(torch.isfinite(g).all() for g in g16.values()), stage


def test_a_student_trained_on_finer_pose_maps_learns_through_them_and_keeps_them(
        tiny_data: Path, tiny_ckpt: Path, tmp_path: Path) -> None:
    """`train student --pose-scale 4`: the clips are drawn at the student's finer size,
    the new path gets gradient (its weights leave zero), the teacher beside it stays
    as it was, and training the result further keeps the scale without the flag."""
    from realtime.cli import main

    base = ["train", "student", "--preset", "tiny", "--data", str(tiny_data),
            "--no-progress", "--steps", "2"]
    out = tmp_path / "fine"
    assert main(base + ["--init", str(tiny_ckpt), "--out", str(out), "--pose-scale", "4"]) == 0
    model = load_checkpoint(out, preset="tiny")
    assert model.cfg.pose_scale == 4
    assert model.dit.pose_encoder.conv.weight[:, -FINE_PLANES:].abs().sum() > 0
    assert load_checkpoint(out / "teacher", preset="tiny").cfg.pose_scale == 2
    clip = load_clips(tiny_data, "train", model.cfg, limit=1)[0]
    assert clip.pose.shape[-1] == 2 * get_preset("tiny").pose_size == model.cfg.pose_size
    more = tmp_path / "more"
    assert main(base + ["--init", str(out), "--out", str(more)]) == 0
    assert load_checkpoint(more, preset="tiny").cfg.pose_scale == 4


def test_a_student_trained_with_the_face_sketch_reads_it_and_keeps_it(
        tiny_data: Path, tiny_ckpt: Path, tmp_path: Path) -> None:
    """`train student --face-sketch`: the clips carry the sketch plane, its weights leave
    zero, the teacher beside the student stays without it, and training the result
    further keeps it without the flag."""
    from realtime.cli import main
    from realtime.motion.types import N_POSE_CHANNELS

    base = ["train", "student", "--preset", "tiny", "--data", str(tiny_data),
            "--no-progress", "--steps", "2"]
    out = tmp_path / "sketch"
    assert main(base + ["--init", str(tiny_ckpt), "--out", str(out), "--face-sketch"]) == 0
    model = load_checkpoint(out, preset="tiny")
    assert model.cfg.face_sketch
    assert model.dit.pose_encoder.conv.weight[:, N_POSE_CHANNELS].abs().sum() > 0
    assert not load_checkpoint(out / "teacher", preset="tiny").cfg.face_sketch
    clip = load_clips(tiny_data, "train", model.cfg, limit=1)[0]
    assert clip.pose.shape[1] == N_POSE_CHANNELS + 1
    more = tmp_path / "more"
    assert main(base + ["--init", str(out), "--out", str(more)]) == 0
    assert load_checkpoint(more, preset="tiny").cfg.face_sketch
