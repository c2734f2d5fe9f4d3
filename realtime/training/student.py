"""Student stage: distil the guided many-step teacher into the 1-4 step causal student,
trained on its own rolled-out history.

One step, per batch of clip windows (Self Forcing, Huang et al. 2025, for the
rollout; the regression target is the teacher's ODE solution, as in Luhman & Luhman
2021 and CausVid's ODE initialisation, because a distribution-matching critic is out
of reach of a CPU budget):

1. Both caches get the reference: the student's and the teacher's identity sinks.
2. Roll out `n` history chunks with the student, no gradients, with the runtime's
   own `sample_chunk`: the student's cache is written exactly as inference writes it
   (same function, same cache-write mode). The teacher's cache is written from the
   same latents by the teacher (`teacher.write_history`), so both models see the
   student's history, errors included.
3. For the next chunk, one noise draw z: the teacher integrates it with `steps` guided
   Euler steps (two-branch CFG) -> target; the student integrates the same z with
   s in {1, 2, 4} steps of the runtime's schedule, with gradients -> prediction.
4. Loss: MSE(prediction, target) (+ `gt_weight` x MSE to the ground-truth latents).

The student thereby learns the teacher's GUIDED output directly: inference makes
no guidance pass. Because the history it is supervised on is its own, errors it
makes early are inputs it learns to recover from, and long streams do not drift.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from realtime.model.cache import KVCache
from realtime.model.dit import StudentDiT
from realtime.model.sampler import SampledChunk, sample_chunk, timesteps
from realtime.training.data import LatentBatch, LatentClips
from realtime.training.loop import StepContext
from realtime.training.teacher import teacher_sample_chunk, write_history


@dataclass
class StudentConfig:
    batch: int = 2
    step_choices: tuple[int, ...] = (1, 2, 4)   # student step counts trained
    max_history: int = 6            # history chunks rolled out before the supervised one
    teacher_steps: int = 16
    guidance: float = 2.0
    gt_weight: float = 0.0


def new_cache(model: StudentDiT, batch: int, device: torch.device | str) -> KVCache:
    cfg = model.cfg
    dtype = next(model.parameters()).dtype
    return KVCache(cfg.layout(), cfg.depth, cfg.heads, cfg.head_dim, batch=batch,
                   device=device, dtype=dtype).setup()


@torch.no_grad()
def set_reference(model: StudentDiT, cache: KVCache, ref: torch.Tensor) -> None:
    """ref (B, R, c, h, w) clean latents -> the cache's identity sink."""
    ks, vs = model.encode_reference(ref)
    cache.set_sink(ks, vs)


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
    for i in range(steps):
        v, _, _ = student.forward_chunk(x, x.new_full((B, K), ts[i]), pose, face, presence,
                                        cache)
        assert v is not None
        x = x + (ts[i + 1] - ts[i]) * v
    return x


def student_step(
    student: StudentDiT, teacher: StudentDiT, data: LatentClips, ctx: StepContext,
    cfg: StudentConfig,
) -> tuple[torch.Tensor, dict[str, float]]:
    """One self-forcing distillation loss (see the module docstring)."""
    K = student.cfg.chunk
    n_hist = int(ctx.rng.integers(0, cfg.max_history + 1))
    steps = int(cfg.step_choices[int(ctx.rng.integers(0, len(cfg.step_choices)))])
    b = data.sample(ctx.rng, cfg.batch, (n_hist + 1) * K, ctx.device)
    s_cache = new_cache(student, cfg.batch, ctx.device)
    t_cache = new_cache(teacher, cfg.batch, ctx.device)
    set_reference(student, s_cache, b.ref)
    set_reference(teacher, t_cache, b.ref)
    with ctx.autocast():
        rollout_history(student, s_cache, teacher, t_cache, b, n_hist, steps, ctx.gen)
        lat, pose, face, pres = chunk_slice(b, n_hist, K)
        z = torch.randn(lat.shape, generator=ctx.gen).to(lat.device, lat.dtype)
        target = teacher_sample_chunk(teacher, t_cache, z, pose, face, pres,
                                      cfg.teacher_steps, cfg.guidance,
                                      teacher.cfg.time_shift, write=False).latents
        pred = student_sample_grad(student, s_cache, z, pose, face, pres, steps)
    loss = F.mse_loss(pred.float(), target.float())
    logs = {"steps": float(steps), "history": float(n_hist), "distill": float(loss.detach())}
    if cfg.gt_weight > 0:
        gt = F.mse_loss(pred.float(), lat.float())
        loss = loss + cfg.gt_weight * gt
        logs["gt"] = float(gt.detach())
    return loss, logs
