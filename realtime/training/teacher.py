"""Teacher stage: flow matching with classifier-free-guidance dropout, and the teacher's
many-step guided sampler.

The teacher is the runtime's own causal chunked DiT (so the student starts from its
weights), trained teacher-forcing style: every chunk of a clip is denoised at its
own flow time against the clean history before it (`forward.forward_train`).

Flow matching (rectified flow, as `realtime.model.sampler`): x_t = (1 - t) x_0 +
t * noise, target velocity noise - x_0. Flow times are drawn per chunk from a
logit-normal (SD3, Esser et al. 2024), which spends training on mid noise levels.

Classifier-free guidance (Ho & Salimans 2022) with two branches, not three: with
probability `p_uncond` a sample loses BOTH its reference (the identity sink is hidden)
and its motion (pose maps, face vector and presence flags zeroed: "unknown"). At
sampling, v = v_uncond + g (v_cond - v_uncond): one conditional and one
unconditional pass per step, never separate reference-only / motion-only branches.

Counterfactual pairs (`pair_weight`). An expression or a finger pose changes a few
percent of a frame's pixels, and a clean history already shows last frame's face:
trained on the plain loss, the shipped cpu teacher learned to ignore the face vector
altogether (changing the expression changed its output by RMS 0.001 where the truth
changes by 0.046; `studio.detail_backwards` pairs, training characters). The studio
can render any clip again with only its expression and fingers changed
(`studio.counterfactual_split`); training on a clip and its twin with the same
noise and the same history (the original's: the twin's own history would show the
change already, and copying it is what the plain loss taught), adding the error of
the output's change between them against the truth's (`pair_error`), isolates
exactly that signal.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from realtime.model.cache import KVCache
from realtime.model.dit import StudentDiT
from realtime.model.sampler import SampledChunk
from realtime.training.data import LatentClips, cat_batches
from realtime.training.forward import drop_motion, forward_train, part_mask
from realtime.training.loop import StepContext


@dataclass
class TeacherConfig:
    batch: int = 4
    frames: int = 8                 # frames per training clip (a multiple of the chunk)
    p_uncond: float = 0.1           # probability of dropping reference + motion together
    hist_noise: float = 0.05        # std of noise added to the clean history latents
    steps: int = 16                 # sampling steps at full quality
    guidance: float = 2.0           # CFG scale g
    region_weight: float = 0.0      # loss x (1 + this) on and around the face and hands
    pair_weight: float = 0.0        # x the counterfactual-pair term (module docstring)
    window_noise: float = 0.0       # history flow-noised to a level U(0, this) per sample


def logit_normal(n: int, gen: torch.Generator) -> torch.Tensor:
    """n flow times in (0, 1), sigmoid of a standard normal."""
    return torch.sigmoid(torch.randn(n, generator=gen))


def teacher_step(
    model: StudentDiT, data: LatentClips, ctx: StepContext, cfg: TeacherConfig,
    twins: LatentClips | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """One flow-matching loss on a batch of clip windows. With `twins` (each clip's
    counterfactual twin, frame for frame) and `cfg.pair_weight`, half the batch is
    windows and the other half the same windows' twins queried on the ORIGINAL's
    history, with the same flow times, noise and dropout, plus the pair term: only
    the conditions can tell the model that the face changed."""
    mcfg = model.cfg
    paired = twins is not None and cfg.pair_weight > 0
    n = max(1, cfg.batch // 2) if paired else cfg.batch
    clips, idx = data.draw(ctx.rng, n, cfg.frames)
    b = data.gather(clips, idx, ctx.device)
    N, K = b.latents.shape[1], mcfg.chunk
    t = logit_normal(n * (N // K), ctx.gen).view(n, N // K).repeat_interleave(K, dim=1)
    t = t.to(ctx.device)                                                # (n, N)
    noise = torch.randn(b.latents.shape, generator=ctx.gen).to(ctx.device)
    # history: the windows' own frames (a twin's queries see its ORIGINAL's history)
    if cfg.window_noise > 0:
        hist, hist_t = noised_history(b.latents, cfg.window_noise, ctx.gen)
    else:
        hist = b.latents + cfg.hist_noise * torch.randn(b.latents.shape, generator=ctx.gen
                                                        ).to(ctx.device)
        hist_t = torch.zeros_like(t)
    hist_motion = (b.pose, b.face, b.presence)
    keep = torch.from_numpy(ctx.rng.random(n) >= cfg.p_uncond).to(ctx.device)
    if paired:
        assert twins is not None
        b = cat_batches(b, twins.gather(clips, idx, ctx.device))
        t, noise, hist, hist_t, keep = (torch.cat((x, x)) for x in (t, noise, hist, hist_t,
                                                                    keep))
        h_pose, h_face, h_pres = hist_motion
        hist_motion = (torch.cat((h_pose, h_pose)), torch.cat((h_face, h_face)),
                       torch.cat((h_pres, h_pres)))
    tt = t[:, :, None, None, None]
    x_t = (1 - tt) * b.latents + tt * noise
    with ctx.autocast():
        v = forward_train(model, b.ref, hist, hist_t, x_t, t, b.pose, b.face,
                          b.presence, keep_ref=keep, keep_motion=keep,
                          hist_motion=hist_motion)
    target = noise - b.latents
    err = (v.float() - target).pow(2)
    if cfg.region_weight > 0:
        err = err * (1 + cfg.region_weight * part_mask(b.pose, err.shape[-1]))
    loss = err.mean()
    logs = {"t_mean": float(t.mean())}
    if paired:
        pair = pair_error(v.float()[:n], v.float()[n:], target[:n], target[n:])
        loss = loss + cfg.pair_weight * pair
        logs["pair"] = float(pair.detach())
    return loss, logs


def noised_history(latents: torch.Tensor, level: float, gen: torch.Generator,
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """History latents (B, N, c, h, w) moved along the flow path to a level s ~ U(0,
    `level`) per sample, x_s = (1 - s) x + s noise, and their flow time s (B, N), which
    the model is told (the blocks' time embedding of the history frames). A face that
    noise has drowned cannot be copied from the window; it has to come from the
    condition (context noise augmentation: Valevski et al. 2024, GameNGen; per-frame
    noise levels: Chen et al. 2024, Diffusion Forcing)."""
    B, N = latents.shape[:2]
    s = level * torch.rand(B, generator=gen).to(latents.device)
    eps = torch.randn(latents.shape, generator=gen).to(latents.device)
    ss = s[:, None, None, None, None]
    return (1 - ss) * latents + ss * eps, s[:, None].expand(B, N).contiguous()


def pair_error(out: torch.Tensor, out_twin: torch.Tensor, target: torch.Tensor,
               target_twin: torch.Tensor) -> torch.Tensor:
    """MSE of the output's change from a sample to its counterfactual twin against the
    target's change. Everything the two share (the noise, the body, the history)
    cancels, so this is a low-variance gradient on exactly what the twins differ in,
    which in the plain loss is a few percent of the face and hand pixels."""
    return ((out - out_twin) - (target - target_twin)).pow(2).mean()


def relative_pair_error(out: torch.Tensor, out_twin: torch.Tensor, target: torch.Tensor,
                        target_twin: torch.Tensor, mask: torch.Tensor,
                        floor: float = 1e-3) -> torch.Tensor:
    """`pair_error` inside `mask` (the face and hand boxes, `forward.part_mask`), over
    the batch's truth change there: 1 for an output that ignores the twins' difference,
    0 for one that changes exactly as the truth does, whatever the change's size above
    the floor (the share of it the output misses; `evaluate.response` measures the
    same thing in pixels). `pair_error` is a mean over every latent, so it also counts
    the change's spill outside the face and hands and grows with the change.

    Summed over the batch before dividing, and the divisor is at least `floor` per
    latent in the boxes (the training twins change by about 0.067 there: the default
    checkpoint's history/pair-scale-stop39.json). A batch whose truth barely changes
    there (clips played backwards, at their middle; a hand too small to draw) would
    otherwise divide by nearly nothing: on a one-character dataset, before the floor,
    the term reached 2.7e7."""
    d_gt = (target - target_twin) * mask
    miss = (out - out_twin) * mask - d_gt
    least = floor * mask.expand_as(d_gt).sum() + 1e-12
    return miss.pow(2).sum() / torch.maximum(d_gt.pow(2).sum(), least)


def flow_times(steps: int, shift: float = 1.0) -> list[float]:
    """steps + 1 times from 1 to 0 (any step count; the runtime sampler allows 1-4)."""
    ts = [1.0 - i / steps for i in range(steps + 1)]
    return [shift * t / (1.0 + (shift - 1.0) * t) for t in ts]


def uncond_view(cache: KVCache) -> KVCache:
    """The same cache buffers with the identity sink hidden (sink_len 0): what the
    unconditional branch attends to. Shares k/v and ring state with `cache`."""
    view = copy.copy(cache)
    view.sink_len = torch.zeros_like(cache.sink_len)
    return view


def guidance_pair(cache: KVCache) -> KVCache:
    """A read-only cache of 2B sessions for both branches of a guided step in one
    batched forward: the B sessions as they are (the conditional branch), then the same
    sessions with the identity sink hidden (the unconditional branch, `uncond_view`).
    Copies the buffers, so the sampler builds it once per chunk, not once per step."""
    pair = copy.copy(cache)
    pair.k = torch.cat([cache.k, cache.k], dim=1)
    pair.v = torch.cat([cache.v, cache.v], dim=1)
    pair.sink_len = torch.cat([cache.sink_len, torch.zeros_like(cache.sink_len)])
    pair.ring_start = cache.ring_start.repeat(2)
    pair.window_len = cache.window_len.repeat(2)
    pair.frame_pos = cache.frame_pos.repeat(2)
    depth, B, H, S, D = cache.shape
    pair.shape = (depth, 2 * B, H, S, D)
    pair._rope = None
    return pair


@torch.no_grad()
def write_history(
    model: StudentDiT, cache: KVCache, latents: torch.Tensor, t: float, pose: torch.Tensor,
    face: torch.Tensor, presence: torch.Tensor,
) -> None:
    """Append a chunk's keys/values, computed by `model` from `latents` at flow time t
    (what the cache-write mode says was written), to `cache`."""
    B, K = latents.shape[:2]
    _, ks, vs = model.forward_chunk(latents, latents.new_full((B, K), t), pose, face,
                                    presence, cache, kv_only=True)
    cache.write_chunk(ks, vs)


@torch.no_grad()
def teacher_sample_chunk(
    model: StudentDiT,
    cache: KVCache,
    noise: torch.Tensor,            # (B, K, c, h, w)
    pose: torch.Tensor,             # (B, K, 16, P, P)
    face: torch.Tensor,             # (B, K, 12)
    presence: torch.Tensor,         # (B, K, 4)
    steps: int,
    guidance: float,
    time_shift: float = 1.0,
    cache_write: str = "clean",
    write: bool = True,
) -> SampledChunk:
    """Guided Euler sampling of one chunk with `steps` steps, then the cache write in
    the runtime's mode ('clean': t = 0 pass; 'last_step': the last step's input).
    Guidance is v_u + g (v_c - v_u), from the conditional branch and the one with no
    reference and no motion, both in one forward of 2B rows over `guidance_pair`."""
    ts = flow_times(steps, time_shift)
    x = noise
    written, written_t = x, ts[-2]
    guided = guidance != 1.0
    # the same at every step: the cache view, the motion rows and their embedding
    view, rows = cache, (pose, face, presence)
    if guided:
        view = guidance_pair(cache)
        keep = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        d_pose, d_face, d_presence = drop_motion(pose, face, presence, keep)
        rows = (torch.cat([pose, d_pose]), torch.cat([face, d_face]),
                torch.cat([presence, d_presence]))
    motion = model.embed_motion(*rows, x.dtype)
    for i in range(steps):
        if i == steps - 1:
            written, written_t = x, ts[i]
        xx = torch.cat([x, x]) if guided else x
        v, _, _ = model.forward_chunk(xx, xx.new_full(xx.shape[:2], ts[i]), *rows, view,
                                      motion=motion)
        assert v is not None
        if guided:
            v_c, v_u = v.chunk(2)
            v = v_u + guidance * (v_c - v_u)
        x = x + (ts[i + 1] - ts[i]) * v
    if cache_write == "clean":
        written, written_t = x, 0.0
    if write:
        write_history(model, cache, written, written_t, pose, face, presence)
    return SampledChunk(x, written, written_t)
