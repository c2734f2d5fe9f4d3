"""Counterfactual pairs: twins that differ only in expression and fingers, and the
pair term of the teacher and student losses that trains on that difference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from realtime.model.bundle import AnimationModel
from realtime.model.config import get_preset
from realtime.motion.types import FACE_FEATURES
from realtime.training.data import encode_clips
from realtime.training.evaluate import HEAD_ROTATION
from realtime.training.loop import StepContext
from realtime.training.metrics import FACE_CHANNELS, HAND_CHANNELS
from realtime.training.stages import StageArgs, run_student, run_teacher
from realtime.training.student import StreamPool, StudentConfig, student_step
from realtime.training.studio import counterfactual_split, detail_backwards
from realtime.training.teacher import TeacherConfig, relative_pair_error, teacher_step


def _ctx(seed: int = 0) -> StepContext:
    return StepContext(0, torch.device("cpu"), np.random.default_rng(seed),
                       torch.Generator().manual_seed(seed))


def test_twins_are_the_stored_clips_changed_only_in_expression_and_fingers(
        tiny_data: Path) -> None:
    cfg = get_preset("tiny")
    clips, same = counterfactual_split(tiny_data, "train", cfg, edit=lambda m: m)
    # an edit that changes nothing renders every clip exactly as the dataset stored it
    for a, b in zip(clips, same, strict=True):
        assert np.array_equal(a.frames, b.frames) and np.array_equal(a.face, b.face)
        assert np.array_equal(a.reference, b.reference) and np.array_equal(a.pose, b.pose)
    clips, twins = counterfactual_split(tiny_data, "train", cfg)
    assert len(twins) == len(clips) > 0
    rotation = [FACE_FEATURES.index(f) for f in HEAD_ROTATION]
    expression = [i for i in range(len(FACE_FEATURES)) if i not in rotation]
    body = [c for c in range(clips[0].pose.shape[1])
            if c not in FACE_CHANNELS + HAND_CHANNELS]
    changed = 0
    for a, b in zip(clips, twins, strict=True):
        assert np.array_equal(a.pose[:, body], b.pose[:, body])      # same body, same camera
        assert np.allclose(a.face[:, rotation], b.face[:, rotation], atol=1e-6)
        assert np.array_equal(a.presence, b.presence)
        assert np.array_equal(a.reference, b.reference)
        changed += int(not np.allclose(a.face[:, expression], b.face[:, expression]))
    assert changed > 0                  # the performers do change their expression


def test_twins_rendered_in_worker_processes_are_the_twins_rendered_here(
        tiny_data: Path) -> None:
    # a GPU call renders thousands of twins before the teacher's first step: they go to
    # every core, and must not change with the number of processes
    cfg = get_preset("tiny")
    clips, here = counterfactual_split(tiny_data, "train", cfg, workers=1)
    _, pooled = counterfactual_split(tiny_data, "train", cfg, workers=2)
    assert len(pooled) == len(here) == len(clips) > 1
    assert any(not np.array_equal(c.face, t.face) for c, t in zip(clips, here, strict=True))
    for a, b in zip(here, pooled, strict=True):
        assert np.array_equal(a.frames, b.frames) and np.array_equal(a.face, b.face)
        assert np.array_equal(a.pose, b.pose) and a.motion == b.motion


def test_compact_clips_and_twins_encode_to_the_same_training_set_in_a_quarter_of_the_maps(
        tiny_data: Path) -> None:
    # a trainer keeps every clip and twin until it has encoded them: compact ones hold
    # their maps as uint8, and what training reads from them must not change by a bit
    cfg = get_preset("tiny")
    model = AnimationModel.random(cfg, seed=0)
    clips, twins = counterfactual_split(tiny_data, "train", cfg)
    small, small_twins = counterfactual_split(tiny_data, "train", cfg, compact=True)
    for full, compact in ((clips, small), (twins, small_twins)):
        assert sum(c.pose.nbytes for c in compact) * 4 == sum(c.pose.nbytes for c in full)
        a, b = encode_clips(model.ae, full), encode_clips(model.ae, compact)
        for x, y in zip((a.ref, a.latents, a.pose, a.face, a.presence),
                        (b.ref, b.latents, b.pose, b.face, b.presence), strict=True):
            assert x.dtype == y.dtype and torch.equal(x, y)


def test_detail_backwards_plays_expression_and_fingers_in_reverse() -> None:
    from realtime.avatars.motion import ProceduralMotion

    gen = ProceduralMotion(3)
    motion = [gen.frame(i) for i in range(6)]
    out = detail_backwards(motion)
    rotation = [FACE_FEATURES.index(f) for f in HEAD_ROTATION]
    for i, m in enumerate(out):
        r = motion[5 - i]
        assert np.allclose(m.face[rotation], motion[i].face[rotation])
        assert np.allclose(np.delete(m.face, rotation), np.delete(r.face, rotation))
        assert np.array_equal(m.body_dirs, motion[i].body_dirs)
        if motion[i].left_hand_dirs is not None and r.left_hand_dirs is not None:
            assert m.left_hand_dirs is not None
            assert np.array_equal(m.left_hand_dirs, r.left_hand_dirs)


def test_pair_term_is_zero_for_identical_twins_and_trains_the_difference(
        tiny_data: Path) -> None:
    cfg = get_preset("tiny")
    model = AnimationModel.random(cfg, seed=0, zero_init=False)
    clips, twins = counterfactual_split(tiny_data, "train", cfg)
    data, alt = encode_clips(model.ae, clips), encode_clips(model.ae, twins)
    tcfg = TeacherConfig(batch=2, frames=4, pair_weight=1.0)
    # a clip paired with itself: both halves get the same times, noise and dropout
    _, logs = teacher_step(model.dit, data, _ctx(), tcfg, data)
    assert logs["pair"] == 0.0
    opt = torch.optim.Adam(model.dit.parameters(), lr=2e-3)
    pairs = []
    weighted = TeacherConfig(batch=2, frames=4, pair_weight=20.0)
    for _ in range(25):
        loss, logs = teacher_step(model.dit, data, _ctx(), weighted, alt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        pairs.append(logs["pair"])
    assert pairs[0] > 0 and pairs[-1] < 0.5 * pairs[0], pairs

    # the student: the same chunk of the twin, same cache and noise
    teacher = AnimationModel.random(cfg, seed=1, zero_init=False).dit
    scfg = StudentConfig(batch=1, max_history=1, teacher_steps=2, pair_weight=1.0)
    pool = StreamPool(model.dit, teacher, data, scfg, "cpu", twins=data)
    _, logs = student_step(pool, _ctx(3), scfg)
    assert logs["pair"] == 0.0
    pool = StreamPool(model.dit, teacher, data, scfg, "cpu", twins=alt)
    _, logs = student_step(pool, _ctx(3), scfg)
    assert logs["pair"] > 0.0


def test_stages_train_with_pairs_and_record_the_weight_and_learning_rate(
        tiny_data: Path, tiny_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "teacher"
    run_teacher(StageArgs("tiny", tiny_data, out, init=tiny_ckpt, steps=2, progress=False,
                          log_every=1, pair_weight=3.0, lr=2e-5, window_noise=0.3))
    meta = json.loads((out / "config.json").read_text())["meta"]
    assert meta["pair_weight"] == 3.0 and meta["window_noise"] == 0.3
    rows = [json.loads(r) for r in (out / "log.jsonl").read_text().splitlines()]
    assert any("pair" in r for r in rows)
    assert rows[0]["config"]["lr"] == 2e-5          # --lr replaces the plan's
    student = tmp_path / "student"
    run_student(StageArgs("tiny", tiny_data, student, init=out, steps=2, progress=False,
                          log_every=1, pair_weight=3.0))
    rows = [json.loads(r) for r in (student / "log.jsonl").read_text().splitlines()]
    assert any("pair" in r for r in rows)
    assert json.loads((student / "config.json").read_text())["meta"]["pair_weight"] == 3.0


def test_window_noise_drowns_the_history_to_a_level_the_model_is_told(
        tiny_data: Path, monkeypatch) -> None:
    import realtime.training.teacher as teacher

    cfg = get_preset("tiny")
    model = AnimationModel.random(cfg, seed=0, zero_init=False)
    clips, twins = counterfactual_split(tiny_data, "train", cfg)
    data, alt = encode_clips(model.ae, clips), encode_clips(model.ae, twins)
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    real = teacher.forward_train

    def spy(model, ref, hist, hist_t, query, *rest, **kw):
        seen.append((hist, hist_t))
        return real(model, ref, hist, hist_t, query, *rest, **kw)

    monkeypatch.setattr(teacher, "forward_train", spy)
    plain = TeacherConfig(batch=2, frames=4, hist_noise=0.0)
    teacher_step(model.dit, data, _ctx(), plain)
    hist, hist_t = seen.pop()
    # the same windows as the step drew (its rng is default_rng(0) too)
    b = data.gather(*data.draw(np.random.default_rng(0), 2, 4), torch.device("cpu"))
    assert torch.all(hist_t == 0) and torch.allclose(hist, b.latents)  # clean, told t = 0

    noisy = TeacherConfig(batch=4, frames=4, hist_noise=0.0, window_noise=0.8,
                          pair_weight=1.0)
    loss, _ = teacher_step(model.dit, data, _ctx(), noisy, alt)
    assert torch.isfinite(loss)
    hist, hist_t = seen.pop()
    s = hist_t[:, 0]
    assert torch.all(hist_t == s[:, None])           # one level per sample, every frame
    assert torch.all((s >= 0) & (s <= 0.8)) and float(s.max()) > 0.05
    assert torch.equal(hist[:2], hist[2:]) and torch.equal(hist_t[:2], hist_t[2:])
    # the level is what it says: a sample's history keeps (1 - s) of the clean latents
    resid = hist[:2] - (1 - s[:2, None, None, None, None]) * b.latents
    scale = resid.flatten(1).std(dim=1)
    assert torch.allclose(scale, s[:2], rtol=0.25), (scale, s)


def test_relative_pair_term_is_the_share_of_the_truths_change_missed_in_the_boxes() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 1, 4, 8, 8, generator=g), torch.randn(2, 1, 4, 8, 8, generator=g)
    mask = torch.zeros(2, 1, 1, 8, 8)
    mask[..., 2:5, 3:6] = 1.0
    base = torch.randn(2, 1, 4, 8, 8, generator=g)
    for scale in (1.0, 0.1):            # the size of the truth's change does not matter
        t, t_b = scale * a, scale * b
        assert torch.isclose(relative_pair_error(base, base, t, t_b, mask), torch.tensor(1.0))
        assert relative_pair_error(base + t, base + t_b, t, t_b, mask) < 1e-6
        half = relative_pair_error(base + 0.5 * t, base + 0.5 * t_b, t, t_b, mask)
        assert torch.isclose(half, torch.tensor(0.25))
    # outside the boxes nothing counts: an output that changes only there still misses all
    off = (1 - mask) * torch.randn(2, 1, 4, 8, 8, generator=g)
    assert torch.isclose(relative_pair_error(base + off, base, a, b, mask), torch.tensor(1.0))
    # twins whose truth does not change in the boxes cannot blow the term up: the divisor
    # is at least the floor per latent there, so an output change of that size scores 1
    same = torch.zeros_like(a)
    step = 1e-3 ** 0.5 * torch.ones_like(a)
    assert torch.isclose(relative_pair_error(base + step, base, same, same, mask),
                         torch.tensor(1.0))
    assert relative_pair_error(base, base, same, same, mask) == 0.0


def test_student_relative_pair_term_starts_near_one_and_is_recorded(
        tiny_data: Path, tiny_ckpt: Path, tmp_path: Path) -> None:
    cfg = get_preset("tiny")
    model = AnimationModel.random(cfg, seed=0, zero_init=False)
    clips, twins = counterfactual_split(tiny_data, "train", cfg)
    data, alt = encode_clips(model.ae, clips), encode_clips(model.ae, twins)
    teacher = AnimationModel.random(cfg, seed=1, zero_init=False).dit
    scfg = StudentConfig(batch=2, max_history=1, teacher_steps=2, pair_weight=1.0,
                         pair_relative=True)
    pool = StreamPool(model.dit, teacher, data, scfg, "cpu", twins=alt)
    loss, logs = student_step(pool, _ctx(3), scfg)
    # a random student barely tells the twins apart: it misses about all of the change
    assert 0.5 < logs["pair"] < 5.0 and torch.isfinite(loss)
    with pytest.raises(ValueError, match="pair-weight"):
        run_student(StageArgs("tiny", tiny_data, tmp_path / "x", init=tiny_ckpt, steps=1,
                              progress=False, pair_relative=True))
    out = tmp_path / "student"
    run_student(StageArgs("tiny", tiny_data, out, init=tiny_ckpt, steps=2, progress=False,
                          log_every=1, pair_weight=0.1, pair_relative=True))
    meta = json.loads((out / "config.json").read_text())["meta"]
    assert meta["pair_relative"] is True and meta["pair_weight"] == 0.1
    rows = [json.loads(r) for r in (out / "log.jsonl").read_text().splitlines()]
    assert any(r.get("pair", 0) > 0.5 for r in rows)
