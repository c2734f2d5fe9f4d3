"""The training loop: it learns, a stopped-and-resumed run is the same run, and a
deadline plans the run to end on time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from realtime.training import loop
from realtime.training.loop import LoopConfig, StepContext, StepFn, train_loop


def _problem() -> tuple[nn.Module, StepFn]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.1), nn.Linear(16, 1))
    target = torch.randn(8, 1)

    def step_fn(ctx: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        # randomness from the loop's generators (numpy + torch) and torch's global
        # one (dropout): all three must be restored on resume
        idx = int(ctx.rng.integers(0, 1000))
        x = torch.randn(16, 8, generator=ctx.gen) + idx * 1e-3
        loss = (model(x) - x @ target).pow(2).mean()
        return loss, {"idx": float(idx)}

    return model, step_fn


def _cfg(steps: int) -> LoopConfig:
    return LoopConfig(steps=steps, lr=1e-2, warmup=2, log_every=1, checkpoint_every=3,
                      progress=False)


def test_resume_reproduces_the_uninterrupted_loss_trajectory(tmp_path: Path) -> None:
    model, fn = _problem()
    full = train_loop("t", {"m": model}, fn, _cfg(8), tmp_path / "a")

    model, fn = _problem()
    stopped = _cfg(8)
    stopped.stop_at = 3                     # interrupted after step 3
    first = train_loop("t", {"m": model}, fn, stopped, tmp_path / "b")
    model, fn = _problem()                  # fresh process state: weights re-initialised
    log = tmp_path / "b" / "log.jsonl"
    rest = train_loop("t", {"m": model}, fn, _cfg(8), tmp_path / "b", resume=True,
                      json_log=log)
    assert first.losses + rest.losses == full.losses
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert records[0]["event"] == "start" and records[0]["step"] == 3
    assert [r["step"] for r in records if "loss" in r] == list(range(4, 9))


def test_training_lowers_the_loss(tmp_path: Path) -> None:
    model, fn = _problem()
    res = train_loop("t", {"m": model}, fn, _cfg(60), tmp_path)
    assert sum(res.losses[-5:]) < 0.5 * sum(res.losses[:5])


class _Clock:
    """A stand-in for the loop's `time` module: one second passes per training step."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    perf_counter = monotonic = process_time = __call__


def _timed_problem(clock: _Clock) -> tuple[nn.Module, StepFn]:
    model, fn = _problem()

    def step_fn(ctx: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        clock.now += 1.0
        return fn(ctx)

    return model, step_fn


def _records(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def _deadline_run(monkeypatch: pytest.MonkeyPatch, seconds: float,
                  **cfg_changes: object) -> tuple[_Clock, nn.Module, StepFn, LoopConfig]:
    """A fake clock in the loop, a problem on it, and a config due `seconds` from now."""
    clock = _Clock()
    monkeypatch.setattr(loop, "time", clock)
    model, fn = _timed_problem(clock)
    cfg = _cfg(1000)                        # the plan's count: far more than time allows
    cfg.deadline = clock.now + seconds
    for k, v in cfg_changes.items():
        setattr(cfg, k, v)
    return clock, model, fn, cfg


def test_a_deadline_plans_as_many_steps_as_the_time_left_holds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock, model, fn, cfg = _deadline_run(monkeypatch, 100.0)
    res = train_loop("t", {"m": model}, fn, cfg, tmp_path, json_log=tmp_path / "log.jsonl")
    # 2 steps timed (the warm-up), then the 98 s left at 1 s a step
    assert res.step == 100
    assert clock.now == pytest.approx(cfg.deadline)
    records = _records(tmp_path / "log.jsonl")
    assert [r["steps"] for r in records if r.get("event") == "planned"] == [100]
    # the schedule was planned for those steps: it decays to its floor at the last one
    lrs = [r["lr"] for r in records if "lr" in r]
    assert lrs[-1] == pytest.approx(0.1 * cfg.lr, rel=0.01)


def test_a_resumed_run_keeps_the_step_count_it_planned(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock, model, fn, cfg = _deadline_run(monkeypatch, 40.0)
    full = train_loop("t", {"m": model}, fn, cfg, tmp_path / "a")

    clock.now = 1000.0
    model, fn = _timed_problem(clock)
    stopped = _cfg(1000)
    stopped.deadline, stopped.stop_at = clock.now + 40.0, 15
    first = train_loop("t", {"m": model}, fn, stopped, tmp_path / "b")
    model, fn = _timed_problem(clock)
    later = _cfg(1000)
    later.deadline = clock.now + 500.0      # more time now: the run is planned already
    rest = train_loop("t", {"m": model}, fn, later, tmp_path / "b", resume=True)
    assert full.step == rest.step == 40
    assert first.losses + rest.losses == full.losses


def test_a_run_resumed_before_its_plan_still_plans_inside_the_warm_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the warm-up the learning rate depends on the step count: planning later
    would have run some steps on a schedule for another count."""
    clock, model, fn, cfg = _deadline_run(monkeypatch, 100.0, warmup=10, stop_at=6)
    train_loop("t", {"m": model}, fn, cfg, tmp_path)          # stopped before planning
    model, fn = _timed_problem(clock)
    cfg.stop_at = None
    log = tmp_path / "log.jsonl"
    train_loop("t", {"m": model}, fn, cfg, tmp_path, resume=True, json_log=log)
    planned = [r for r in _records(log) if r.get("event") == "planned"]
    assert [r["step"] for r in planned] == [10]


def test_the_plan_leaves_time_for_the_checkpoints(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stage's checkpoint also exports and evaluates: the plan pays for them."""
    clock, model, fn, cfg = _deadline_run(monkeypatch, 100.0, checkpoint_every=5)

    def export(step: int) -> None:
        clock.now += 5.0                    # each checkpoint costs five steps' time

    res = train_loop("t", {"m": model}, fn, cfg, tmp_path, on_checkpoint=export)
    # 2 s of steps, a 5 s checkpoint, then 2 s per step (1 + 5/5) with a last checkpoint
    assert res.step == 2 + (93 - 5) // 2
    assert clock.now == pytest.approx(cfg.deadline, abs=5.0)


def test_a_run_whose_machine_frees_up_replans_to_use_its_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rate is measured while the machine is busy (3 s a step), then it frees up
    (1 s a step): the plan made then would end the run at a third of its time, so the
    run re-plans at its next checkpoint and ends on time, its schedule decayed."""
    clock = _Clock()
    monkeypatch.setattr(loop, "time", clock)
    model, fn = _problem()

    def step_fn(ctx: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        clock.now += 3.0 if ctx.step < 10 else 1.0
        return fn(ctx)

    cfg = _cfg(1000)
    cfg.deadline, cfg.warmup, cfg.checkpoint_every = clock.now + 200.0, 10, 10
    log = tmp_path / "log.jsonl"
    res = train_loop("t", {"m": model}, step_fn, cfg, tmp_path, json_log=log)
    records = _records(log)
    first = [r["steps"] for r in records if r.get("event") == "planned"]
    again = [r["steps"] for r in records if r.get("event") == "replanned"]
    assert first and first[0] < 80                 # planned at 3 s a step
    assert again and again[0] > 150                 # then at 1 s a step
    assert res.step > 170 and clock.now == pytest.approx(cfg.deadline, abs=3.0)
    lrs = [r["lr"] for r in records if "lr" in r]
    assert lrs[-1] == pytest.approx(0.1 * cfg.lr, rel=0.05)
