"""The one training loop every stage (autoencoder, teacher, student) runs.

A stage supplies the modules it trains and a `step_fn(ctx) -> (loss, logs)` that
draws all of its randomness from `ctx.rng` (numpy) and `ctx.gen` (torch). The loop
owns everything else:

- AdamW with linear warm-up, gradient clipping, bf16 autocast on CUDA;
- a rich progress bar and a JSON-lines log (one object per logged step);
- checkpoints every `checkpoint_every` steps to `<out>/train_state.pt`, holding the
  weights, the optimizer, the step and every RNG state, so that `resume=True`
  continues with exactly the loss trajectory an uninterrupted run would have had;
- with a `deadline`, a step count fitted to the wall time left: the first
  `fit_after` steps measure the rate, a checkpoint made then measures what one
  costs, and the schedule is planned for as many steps as the time left holds
  (`fit_steps`). They run inside the warm-up, whose learning rate does not depend
  on the step count, so the run is the one a run planned for that count from the
  start would have been; the count is saved with the state, and a resumed run
  keeps it. The first quarter of those steps is not timed (a GPU's first steps
  pay for its warm-up). The run that planned re-plans at each checkpoint before
  the last quarter of its schedule when the rate since the last checkpoint says
  the time left holds over 10 % more or fewer steps than planned (a machine busy
  with other work while the rate was measured, or freed later): the schedule then
  stretches or shrinks from that step on.

Exact resume works because nothing random happens outside the two generators in
`StepContext` (plus torch's global generator, which is saved too), and batches are
drawn, never iterated from a stateful loader.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Generator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

STATE_FILE = "train_state.pt"


@dataclass
class LoopConfig:
    steps: int = 1000
    lr: float = 3e-4
    weight_decay: float = 0.0
    warmup: int = 50
    grad_clip: float = 1.0
    log_every: int = 10
    checkpoint_every: int = 200
    seed: int = 0
    device: str = "cpu"
    progress: bool = True
    stop_at: int | None = None          # stop (with a checkpoint) after this step:
                                        # an interruption that --resume continues
    time_limit_s: float | None = None   # same, once this much wall time has passed
    deadline: float | None = None       # time.monotonic() to plan `steps` for (module doc)
    fit_after: int = 20                 # steps timed before the plan is fitted


@dataclass
class StepContext:
    """What a step function may use: the step index, the device and the generators."""

    step: int
    device: torch.device
    rng: np.random.Generator
    gen: torch.Generator

    def autocast(self) -> AbstractContextManager[Any]:
        """bf16 autocast on CUDA; nothing on the CPU (fp32 there)."""
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


StepFn = Callable[[StepContext], tuple[torch.Tensor, dict[str, float]]]


@dataclass
class LoopResult:
    step: int
    last_logs: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0
    cpu_s: float = 0.0
    losses: list[float] = field(default_factory=list)   # every step's loss, this run


def pick_device(name: str | None = None) -> torch.device:
    """'cuda' when present unless told otherwise."""
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _lr_at(step: int, cfg: LoopConfig) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def fit_steps(step: int, seconds_left: float, step_s: float, checkpoint_s: float = 0.0,
              checkpoint_every: int = 0) -> int:
    """The total step count the time left holds: `step` done, each further step taking
    `step_s` plus its share of a checkpoint (`checkpoint_s` every `checkpoint_every`
    steps), and one last checkpoint at the end. At least one more step."""
    per_step = step_s + (checkpoint_s / checkpoint_every if checkpoint_every else 0.0)
    return step + max(1, int((seconds_left - checkpoint_s) / max(per_step, 1e-9)))


def _trainable(modules: dict[str, nn.Module]) -> list[nn.Parameter]:
    return [p for m in modules.values() for p in m.parameters() if p.requires_grad]


def save_state(
    path: Path,
    modules: dict[str, nn.Module],
    opt: torch.optim.Optimizer,
    step: int,
    rng: np.random.Generator,
    gen: torch.Generator,
    extra: dict[str, Any] | None = None,
    planned_steps: int | None = None,
) -> None:
    """Write a resumable training state atomically (tmp file + rename)."""
    state = {
        "step": step,
        "planned_steps": planned_steps,
        "modules": {k: m.state_dict() for k, m in modules.items()},
        "optimizer": opt.state_dict(),
        "np_rng": rng.bit_generator.state,
        "torch_gen": gen.get_state(),
        "torch_global": torch.get_rng_state(),
        "cuda_global": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "extra": extra or {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_state(path: Path) -> dict[str, Any]:
    """The dict `save_state` wrote (weights_only=False: it holds RNG states)."""
    return torch.load(path, map_location="cpu", weights_only=False)


class JsonLog:
    """Append-only JSON-lines log; None path = no file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        if self.path is None:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


def _progress(
    enabled: bool, total: int, start: int, name: str
) -> Generator[Callable[..., None], None, None]:
    """Yields an `update(step, loss)` callable driving a rich progress bar."""
    if not enabled:
        yield lambda *a, **k: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[loss]}"), TimeElapsedColumn(),
                  TimeRemainingColumn(), transient=False) as bar:
        task = bar.add_task(name, total=total, completed=start, loss="")

        def update(step: int, loss: float, total: int | None = None) -> None:
            bar.update(task, completed=step, total=total, loss=f"loss {loss:.4f}")

        yield update


def train_loop(
    name: str,
    modules: dict[str, nn.Module],
    step_fn: StepFn,
    cfg: LoopConfig,
    out: Path,
    resume: bool = False,
    json_log: Path | None = None,
    stateful: Stateful | None = None,
    on_checkpoint: Callable[[int], None] | None = None,
) -> LoopResult:
    """Run `cfg.steps` optimisation steps in total (a resumed run does the rest).

    `on_checkpoint(step)` is called after each interval checkpoint (the stages use it
    to export the inference checkpoint beside the training state). `stateful` is any
    further state a step function carries from step to step (the student's stream
    pool): saved with every checkpoint and restored on resume."""
    device = torch.device(cfg.device)
    for m in modules.values():
        m.to(device).train()
    params = _trainable(modules)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay,
                            betas=(0.9, 0.99))
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    step = 0
    # the step count fitted to cfg.deadline, once known (saved with the state)
    planned: int | None = None
    state_path = out / STATE_FILE
    if resume and state_path.exists():
        state = load_state(state_path)
        for k, m in modules.items():
            m.load_state_dict(state["modules"][k])
        opt.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["np_rng"]
        gen.set_state(state["torch_gen"])
        torch.set_rng_state(state["torch_global"])
        if state.get("cuda_global") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_global"])
        step = int(state["step"])
        if stateful is not None and state.get("extra"):
            stateful.load_state_dict(state["extra"])
        if state.get("planned_steps"):
            planned = int(state["planned_steps"])
    if planned is not None:
        cfg = replace(cfg, steps=planned)
    log = JsonLog(json_log)
    log.write({"event": "start", "stage": name, "step": step, "resume": resume,
               "device": str(device), "config": asdict(cfg),
               "params": sum(p.numel() for p in params)})
    result = LoopResult(step=step)
    t0, c0 = time.perf_counter(), time.process_time()
    start = step
    # fit inside the warm-up (a run resumed before its plan too), else after fit_after
    fit_at = (min(start + cfg.fit_after, cfg.warmup) if start < cfg.warmup
              else start + cfg.fit_after)
    timed_from = start + (fit_at - start) // 4      # the steps before it are not timed
    t_timed = t0
    replans = False                 # only the run that planned re-plans (not a resume)
    window: tuple[float, int] | None = None     # (time, step) of the last checkpoint
    bar = _progress(cfg.progress, cfg.steps, step, name)
    update = next(bar)

    def extra() -> dict[str, Any] | None:
        return stateful.state_dict() if stateful is not None else None

    try:
        while step < cfg.steps:
            if cfg.deadline is not None and planned is None and step == fit_at:
                # the steps so far give the rate; a checkpoint made now, what one costs
                # (the stages' exports evaluate held-out frames)
                t_ckpt = time.perf_counter()
                step_s = (t_ckpt - t_timed) / max(1, step - timed_from)
                save_state(state_path, modules, opt, step, rng, gen, extra(), None)
                if on_checkpoint is not None:
                    on_checkpoint(step)
                checkpoint_s = time.perf_counter() - t_ckpt
                left = cfg.deadline - time.monotonic()
                planned = fit_steps(step, left, step_s, checkpoint_s, cfg.checkpoint_every)
                cfg = replace(cfg, steps=planned)
                replans = True
                update(step, result.losses[-1] if result.losses else float("nan"),
                       total=planned)
                log.write({"event": "planned", "stage": name, "step": step,
                           "steps": planned, "seconds_left": round(left, 1),
                           "step_s": round(step_s, 4), "checkpoint_s": round(checkpoint_s, 3),
                           "wall_s": round(time.perf_counter() - t0, 3)})
            if step == cfg.stop_at or (cfg.time_limit_s is not None
                                       and time.perf_counter() - t0 > cfg.time_limit_s):
                save_state(state_path, modules, opt, step, rng, gen, extra(), planned)
                if on_checkpoint is not None:
                    on_checkpoint(step)
                log.write({"event": "stopped", "stage": name, "step": step})
                break
            if step == timed_from and planned is None:
                t_timed = time.perf_counter()
            for group in opt.param_groups:
                group["lr"] = _lr_at(step, cfg)
            ctx = StepContext(step=step, device=device, rng=rng, gen=gen)
            loss, logs = step_fn(ctx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            step += 1
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"{name}: loss is {value} at step {step}")
            result.losses.append(value)
            result.last_logs = {"loss": value, **logs}
            update(step, value)
            if step % cfg.log_every == 0 or step == cfg.steps:
                log.write({"stage": name, "step": step, "loss": value,
                           "grad_norm": float(gnorm), "lr": opt.param_groups[0]["lr"],
                           "wall_s": round(time.perf_counter() - t0, 3),
                           "cpu_s": round(time.process_time() - c0, 3), **logs})
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                save_state(state_path, modules, opt, step, rng, gen, extra(), planned)
                if on_checkpoint is not None:
                    on_checkpoint(step)
                if replans and planned is not None and cfg.deadline is not None:
                    # the rate from the last checkpoint to this one, its cost included
                    now = time.perf_counter()
                    last, window = window, (now, step)
                    if last is None or step >= 0.75 * planned:
                        continue
                    rate = (now - last[0]) / (step - last[1])
                    left = cfg.deadline - time.monotonic()
                    fitted = step + max(1, int(left / max(rate, 1e-9)))
                    if abs(fitted - planned) > 0.1 * planned:
                        log.write({"event": "replanned", "stage": name, "step": step,
                                   "steps": fitted, "was": planned,
                                   "seconds_left": round(left, 1), "step_s": round(rate, 4)})
                        planned = fitted
                        cfg = replace(cfg, steps=planned)
                        update(step, value, total=planned)
    finally:
        bar.close()
    result.step = step
    result.wall_s = time.perf_counter() - t0
    result.cpu_s = time.process_time() - c0
    log.write({"event": "end", "stage": name, "step": step, "wall_s": round(result.wall_s, 3),
               "cpu_s": round(result.cpu_s, 3)})
    return result
