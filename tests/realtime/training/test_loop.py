"""The training loop: it learns, and a stopped-and-resumed run is the same run."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

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
