"""Student stage: distil the guided many-step teacher into the 1-4 step causal student,
trained on its own rolled-out history.

One step, over a pool of persistent training streams (`StreamPool`; Self Forcing,
Huang et al. 2025, for the rollout; the regression target is the teacher's ODE
solution, as in Luhman & Luhman 2021 and CausVid's ODE initialisation, because a
distribution-matching critic is out of reach of a CPU budget):

1. Streams whose life is over start again: a new clip, its reference in both
   caches' identity sinks (the student's and the teacher's), an empty window.
2. Every stream rolls on by 0..`max_history` chunks with the student, no gradients,
   with the runtime's own `sample_chunk`: the student's cache is written exactly as
   inference writes it (same function, same cache-write mode). The teacher's cache
   is written from the same latents by the teacher (`teacher.write_history`), so
   both models see the student's history, errors included.
3. For the next chunk, one noise draw z: the teacher integrates it with `steps` guided
   Euler steps (two-branch CFG) -> target; the student integrates the same z with
   s in {1, 2, 4} steps of the runtime's schedule, with gradients -> prediction.
4. Loss: MSE(prediction, target) + w x MSE(prediction, ground-truth latents), with
   w = `gt_weight` on fresh streams and `gt_weight_long` on long ones, times
   1 + `region_weight` on and around the face and hands (`part_mask`); plus
   `pair_weight` x the counterfactual-pair term (`teacher.pair_error`): the same chunk
   of the clip's twin (only its expression and fingers changed), sampled from the
   same cache and noise, should differ from the student's output as the truths do;
   with `pair_relative`, that error in the face and hand boxes over the truth's change
   there (`teacher.relative_pair_error`), 1 for an output that ignores the change.

The student thereby learns the teacher's GUIDED output directly: inference makes
no guidance pass. Because the history it is supervised on is its own, errors it
makes early are inputs it learns to recover from.

Stream lives. A short stream lives one step (a fresh stream with 0..`max_history`
chunks of history, the stream's start). A long one lives a log-uniform number of
chunks up to `max_age` and carries its caches from step to step, so the student is
also supervised on what its history looks like after hundreds of its own chunks:
the state a session reaches after minutes, which a rollout from scratch each step
cannot afford to reach. Each new stream is long with probability `p_long`; as a
long one holds its slot for hundreds of steps, long streams get most of the samples
(about 95 % with the cpu plan). That is deliberate: a session spends nearly all its
life in the long-stream state. Giving both kinds equal shares instead (tried, the
"balanced" run; the default checkpoint's `history/EXPERIMENTS.md` has every run
cited here) won 1.2 dB on a stream's first seconds and lost 2.8 dB after 3000
frames. A stronger ground-truth pull on long streams than on fresh ones (0.25
against 0.05 in the cpu/gpu plans) took the shipped student's drift over 3000
frames from -1.1 dB to -0.1 dB (stop 12). Training the shipped student further
with 0, 0.25 or 0.5 drifted alike (-0.40, -0.52, -0.57 dB; stop 29), and three
training seeds of 0.25 alone span -0.13 to -0.52 dB (stop 30): no weight tried
holds a stream better than another, none as well as the shipped student, and a
stronger one sharpens the background and blurs the figure. Motion plays each clip
forwards and backwards (continuous, any length). The pool's state (caches, cursors) is part of
the training state: resume stays exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from realtime.model.cache import KVCache
from realtime.model.dit import StudentDiT
from realtime.model.sampler import SampledChunk, sample_chunk, timesteps
from realtime.training.data import LatentBatch, LatentClips
from realtime.training.forward import part_mask
from realtime.training.loop import StepContext
from realtime.training.teacher import (
    pair_error,
    relative_pair_error,
    teacher_sample_chunk,
    write_history,
)


@dataclass
class StudentConfig:
    batch: int = 2                  # streams trained side by side
    step_choices: tuple[int, ...] = (1, 2, 4)   # student step counts trained
    max_history: int = 6            # chunks rolled out per step (0..max_history)
    max_age: int = 0                # a long stream's longest life, chunks (0: none)
    p_long: float = 0.5             # probability that a new stream is a long one
    teacher_steps: int = 16
    guidance: float = 2.0
    gt_weight: float = 0.0          # ground-truth pull on fresh streams
    gt_weight_long: float | None = None   # ... on long streams (None: gt_weight)
    region_weight: float = 0.0      # ground-truth pull x (1 + this) on face and hands
    pair_weight: float = 0.0        # x the counterfactual-pair term (teacher.pair_error)
    pair_relative: bool = False     # ... as teacher.relative_pair_error instead


def new_cache(model: StudentDiT, batch: int, device: torch.device | str) -> KVCache:
    cfg = model.cfg
    dtype = next(model.parameters()).dtype
    return KVCache(cfg.layout(), cfg.depth, cfg.heads, cfg.head_dim, batch=batch,
                   device=device, dtype=dtype).setup()


@torch.no_grad()
def set_reference(model: StudentDiT, cache: KVCache, ref: torch.Tensor,
                  rows: torch.Tensor | None = None) -> None:
    """ref (B, R, c, h, w) clean latents -> the cache's identity sink (of `rows` only,
    a (B,) bool mask, if given)."""
    ks, vs = model.encode_reference(ref)
    cache.set_sink(ks, vs, rows)


def chunk_slice(b: LatentBatch, j: int, K: int) -> tuple[torch.Tensor, ...]:
    """(latents, pose, face, presence) of chunk j of a batch."""
    s = slice(j * K, (j + 1) * K)
    return b.latents[:, s], b.pose[:, s], b.face[:, s], b.presence[:, s]


def rollout_history(
    student: StudentDiT, s_cache: KVCache, teacher: StudentDiT | None,
    t_cache: KVCache | None, b: LatentBatch, chunks: int, steps: int, gen: torch.Generator,
) -> list[SampledChunk]:
    """Stream `chunks` chunks of `b` through the student exactly as the engine does
    (`sample_chunk` writes the student's cache); mirror each written chunk into the
    teacher's cache. Returns the sampled chunks."""
    cfg = student.cfg
    K = cfg.chunk
    out = []
    for j in range(chunks):
        lat, pose, face, pres = chunk_slice(b, j, K)
        noise = torch.randn(lat.shape, generator=gen).to(lat.device, lat.dtype)
        res = sample_chunk(student, s_cache, noise, pose, face, pres, steps, cfg.time_shift,
                           cfg.cache_write)
        if teacher is not None and t_cache is not None:
            write_history(teacher, t_cache, res.written, res.written_t, pose, face, pres)
        out.append(res)
    return out


def student_sample_grad(
    student: StudentDiT, cache: KVCache, noise: torch.Tensor, pose: torch.Tensor,
    face: torch.Tensor, presence: torch.Tensor, steps: int,
) -> torch.Tensor:
    """The runtime's few-step Euler sampling, with gradients, no cache write."""
    ts = timesteps(steps, student.cfg.time_shift)
    B, K = noise.shape[:2]
    x = noise
    motion = student.embed_motion(pose, face, presence, x.dtype)     # once per chunk
    for i in range(steps):
        v, _, _ = student.forward_chunk(x, x.new_full((B, K), ts[i]), pose, face, presence,
                                        cache, motion=motion)
        assert v is not None
        x = x + (ts[i + 1] - ts[i]) * v
    return x


def ping_pong(n: torch.Tensor, frames: int) -> torch.Tensor:
    """Frame index into a clip of `frames` frames at stream frame n, playing the clip
    forwards then backwards: continuous motion for any stream length."""
    if frames == 1:
        return torch.zeros_like(n)
    period = 2 * (frames - 1)
    return (frames - 1) - ((n % period) - (frames - 1)).abs()


class StreamPool:
    """`cfg.batch` training streams with persistent student and teacher caches (see the
    module docstring). A stream is a clip (its reference and its motion played
    forwards and backwards from a random start), an age and a life, in chunks."""

    def __init__(self, student: StudentDiT, teacher: StudentDiT, data: LatentClips,
                 cfg: StudentConfig, device: torch.device | str,
                 twins: LatentClips | None = None) -> None:
        self.student, self.teacher, self.data, self.cfg = student, teacher, data, cfg
        self.twins = twins              # each clip's counterfactual twin, or None
        self.device = torch.device(device)
        B = cfg.batch
        self.s_cache = new_cache(student, B, self.device)
        self.t_cache = new_cache(teacher, B, self.device)
        self.clip = torch.zeros(B, dtype=torch.long)
        self.start = torch.zeros(B, dtype=torch.long)     # frame offset into the clip
        self.age = torch.zeros(B, dtype=torch.long)       # chunks streamed so far
        self.life = torch.zeros(B, dtype=torch.long)      # age >= life: renewed next step

    def _life(self, rng: np.random.Generator) -> int:
        cfg = self.cfg
        lo = cfg.max_history + 1
        if cfg.max_age <= lo or rng.random() >= cfg.p_long:
            return 0                                        # one step: a fresh stream
        return int(math.exp(rng.uniform(math.log(lo), math.log(cfg.max_age))))

    def renew(self, rng: np.random.Generator) -> int:
        """Start again every stream whose life is over; returns how many did."""
        due = self.age >= self.life
        n = int(due.sum())
        if n == 0:
            return 0
        for b in torch.nonzero(due).flatten().tolist():
            self.clip[b] = int(rng.integers(0, self.data.n_clips))
            self.start[b] = int(rng.integers(0, 2 * max(1, self.data.n_frames - 1)))
            self.life[b] = self._life(rng)
        self.age[due] = 0
        rows = due.to(self.device)
        ref = self.data.ref[self.clip].to(self.device)
        for model, cache in ((self.student, self.s_cache), (self.teacher, self.t_cache)):
            cache.reset(rows=rows)
            set_reference(model, cache, ref, rows)
        return n

    def frames(self, count: int, twin: bool = False) -> LatentBatch:
        """The next `count` frames of every stream (from its current age on); with
        `twin`, the same frames of each clip's counterfactual twin."""
        n = self.age * self.student.cfg.chunk + self.start
        idx = ping_pong(n[:, None] + torch.arange(count)[None], self.data.n_frames)
        data = self.twins if twin and self.twins is not None else self.data
        return data.gather(self.clip, idx, self.device)

    def roll(self, chunks: int, steps: int, gen: torch.Generator) -> None:
        """Stream `chunks` chunks with the student as the engine does, mirroring each
        written chunk into the teacher's cache; the streams age by `chunks`."""
        if chunks:
            b = self.frames(chunks * self.student.cfg.chunk)
            rollout_history(self.student, self.s_cache, self.teacher, self.t_cache, b,
                            chunks, steps, gen)
        self.age += chunks

    def state_dict(self) -> dict[str, Any]:
        return {"clip": self.clip.clone(), "start": self.start.clone(),
                "age": self.age.clone(), "life": self.life.clone(),
                "student_cache": self.s_cache.state_dict(),
                "teacher_cache": self.t_cache.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in ("clip", "start", "age", "life"):
            getattr(self, name).copy_(state[name])
        self.s_cache.load_state_dict(state["student_cache"])
        self.t_cache.load_state_dict(state["teacher_cache"])


def student_step(
    pool: StreamPool, ctx: StepContext, cfg: StudentConfig,
) -> tuple[torch.Tensor, dict[str, float]]:
    """One self-forcing distillation loss over the pool's streams (module docstring)."""
    student, teacher = pool.student, pool.teacher
    renewed = pool.renew(ctx.rng)
    n_roll = int(ctx.rng.integers(0, cfg.max_history + 1))
    steps = int(cfg.step_choices[int(ctx.rng.integers(0, len(cfg.step_choices)))])
    with ctx.autocast():
        pool.roll(n_roll, steps, ctx.gen)
        lat, pose, face, pres = chunk_slice(pool.frames(student.cfg.chunk), 0,
                                            student.cfg.chunk)
        z = torch.randn(lat.shape, generator=ctx.gen).to(lat.device, lat.dtype)
        target = teacher_sample_chunk(teacher, pool.t_cache, z, pose, face, pres,
                                      cfg.teacher_steps, cfg.guidance,
                                      teacher.cfg.time_shift, write=False).latents
        pred = student_sample_grad(student, pool.s_cache, z, pose, face, pres, steps)
    loss = F.mse_loss(pred.float(), target.float())
    logs = {"steps": float(steps), "history": float(n_roll), "renewed": float(renewed),
            "age_max": float(pool.age.max()), "distill": float(loss.detach())}
    w_long = cfg.gt_weight if cfg.gt_weight_long is None else cfg.gt_weight_long
    if cfg.gt_weight > 0 or w_long > 0:
        # Per stream: the teacher, fed a drifted history, has no reason to undo the
        # drift; the pull towards the truth does, where drift builds up (long streams).
        err = (pred.float() - lat.float()).pow(2)
        if cfg.region_weight > 0:
            err = err * (1 + cfg.region_weight * part_mask(pose, err.shape[-1]))
        gt = err.flatten(1).mean(1)
        w = torch.full_like(gt, cfg.gt_weight)
        w[(pool.life > 0).to(gt.device)] = w_long
        loss = loss + (w * gt).mean()
        logs["gt"] = float(gt.detach().mean())
    if cfg.pair_weight > 0 and pool.twins is not None:
        # the same chunk of each clip's twin, from the same history and noise: its
        # output should change as the truth does
        lat_b, pose_b, face_b, pres_b = chunk_slice(pool.frames(student.cfg.chunk, twin=True),
                                                    0, student.cfg.chunk)
        with ctx.autocast():
            pred_b = student_sample_grad(student, pool.s_cache, z, pose_b, face_b, pres_b,
                                         steps)
        if cfg.pair_relative:
            mask = torch.maximum(part_mask(pose, pred.shape[-1]),
                                 part_mask(pose_b, pred.shape[-1]))
            pair = relative_pair_error(pred.float(), pred_b.float(), lat.float(),
                                       lat_b.float(), mask)
        else:
            pair = pair_error(pred.float(), pred_b.float(), lat.float(), lat_b.float())
        loss = loss + cfg.pair_weight * pair
        logs["pair"] = float(pair.detach())
    return loss, logs
