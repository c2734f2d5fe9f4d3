"""Autoencoder stage: reconstruction training, latent normalisation, held-out PSNR.

Loss: L1 + MSE on pixels in [-1, 1], x (1 + `region_weight`) on and around the face
and hands. The decoder also sees slightly noised latents (`latent_noise` of the
batch's latent std), so it stays graceful on the imperfect latents a few-step student
produces, instead of only on exact encodings; a decoder with `decoder_motion` also
sees each frame's motion planes (none for frames nothing drove). Mirroring is the
augmentation, for frames without motion only (a mirrored driven frame would need its
maps and face vector mirrored too).

After training, `fold_latent_stats` rescales the encoder's output convolution and the
decoder's input convolution so that latents come out per-channel zero-mean, unit-std
on the training images. The flow-matching model assumes data of about unit scale
(like Stable Diffusion's latent scaling factor), and folding keeps the checkpoint
format unchanged: nothing at inference needs to know.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from realtime.model.autoencoder import TinyAutoencoder
from realtime.training.data import FramePool, maps_float
from realtime.training.forward import part_mask
from realtime.training.loop import StepContext
from realtime.training.metrics import psnr
from realtime.training.rollouts import RolloutPool


@dataclass
class AEConfig:
    batch: int = 16
    latent_noise: float = 0.1
    region_weight: float = 0.0      # loss x (1 + this) on and around the face and hands
    temporal_weight: float = 0.0    # rollouts: + this x L1 of the frame-to-frame change
                                    # against the truth's (consecutive frames of a stream)


def ae_step(
    ae: TinyAutoencoder, pool: FramePool, ctx: StepContext, cfg: AEConfig,
) -> tuple[torch.Tensor, dict[str, float]]:
    """One reconstruction loss on a batch drawn from `pool`."""
    idx = torch.from_numpy(ctx.rng.integers(0, len(pool), cfg.batch))
    b = pool[idx]
    x = b.images.to(ctx.device).float() / 127.5 - 1.0                 # (B, 3, H, W)
    undriven = b.presence.sum(1) == 0
    flip = torch.from_numpy(ctx.rng.random(cfg.batch) < 0.5) & undriven
    x = torch.where(flip.to(ctx.device)[:, None, None, None], x.flip(-1), x)
    planes = _planes(ae, b, ctx.device)
    with ctx.autocast():
        z = ae.encode(x)
        noise = torch.randn(z.shape, generator=ctx.gen).to(z.device, z.dtype)
        z = z + cfg.latent_noise * z.detach().std() * noise
        rec = ae.decoder(z, planes).float()
    return _loss(rec, x, b.pose.to(ctx.device), cfg.region_weight)


def rollout_step(
    ae: TinyAutoencoder, pool: RolloutPool, ctx: StepContext, cfg: AEConfig,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The decoder on a batch of a student's own latents (see `RolloutPool`): what it
    decodes at inference, against the ground truth those frames should show. With
    `temporal_weight`, each drawn frame comes with its stream's next one, and the
    decoded change between them is pulled towards the truth's change: decoding
    towards the truth frame by frame otherwise amplifies the stream's wobble."""
    starts = torch.nonzero(pool.has_next).flatten() if cfg.temporal_weight > 0 else None
    if starts is None:
        idx = torch.from_numpy(ctx.rng.integers(0, len(pool), cfg.batch))
    else:
        half = max(1, cfg.batch // 2)
        first = starts[torch.from_numpy(ctx.rng.integers(0, len(starts), half))]
        idx = torch.cat((first, first + 1))
    b = pool.truth[idx]
    x = b.images.to(ctx.device).float() / 127.5 - 1.0
    with ctx.autocast():
        rec = ae.decoder(pool.latents[idx].to(ctx.device), _planes(ae, b, ctx.device)).float()
    loss, info = _loss(rec, x, b.pose.to(ctx.device), cfg.region_weight)
    if starts is not None:
        n = idx.shape[0] // 2
        change = (rec[n:] - rec[:n]) - (x[n:] - x[:n])
        temporal = change.abs().mean()
        loss = loss + cfg.temporal_weight * temporal
        info["temporal"] = float(temporal.detach())
    return loss, info


def counterfactual_step(
    ae: TinyAutoencoder, pool: FramePool, twins: FramePool, ctx: StepContext, cfg: AEConfig,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The decoder given a frame's latents but its counterfactual twin's motion (the
    same frame with only the expression and the fingers changed: `twins[i]` is
    `pool[i]` re-rendered, `studio.counterfactual_split`), against the twin's frame,
    half the batch each way; plus the decoded change from the frame's own motion to
    the twin's against the truth's change, relative to it. Trained on its own
    encodings a decoder that reads motion learns to copy the face from the latents
    (they already show it); here the latents show the other face, so the only way to
    the right mouth or finger is the motion. At inference that is what it must do:
    the student's latents carry the body but not the expression (the model card)."""
    half = max(1, cfg.batch // 2)
    idx = torch.from_numpy(ctx.rng.integers(0, len(pool), half))
    own = FramePool.cat([pool[idx], twins[idx]])      # the latents' frames: a, then b
    src = own.images.to(ctx.device).float() / 127.5 - 1.0
    x = src.roll(half, dims=0)                        # each one's twin: b, then a
    planes = own.planes(ctx.device)
    with ctx.autocast():
        with torch.no_grad():
            z = ae.encode(src)
        noise = torch.randn(z.shape, generator=ctx.gen).to(z.device, z.dtype)
        z = z + cfg.latent_noise * z.std() * noise
        rec, rec_own = ae.decoder(torch.cat((z, z)),
                                  torch.cat((planes.roll(half, dims=0), planes))
                                  ).float().chunk(2)
    loss, info = _loss(rec, x, own.pose.roll(half, dims=0).to(ctx.device), cfg.region_weight)
    return _with_change(loss, info, rec - rec_own, x - src)


def counterfactual_rollout_step(
    ae: TinyAutoencoder, pool: RolloutPool, ctx: StepContext, cfg: AEConfig,
) -> tuple[torch.Tensor, dict[str, float]]:
    """`counterfactual_step` on the student's own streams (`pool.twin` given): the
    latents the student generated for a frame, decoded with the twin's motion against
    the twin's frame, and the change from the frame's own motion to the twin's against
    the truth's. This is the decoder's job in a session: the same blurred latents,
    whatever the face does, so the change must come from the motion alone."""
    if pool.twin is None:
        raise ValueError("counterfactual_rollout_step needs a pool built with its twins")
    idx = torch.from_numpy(ctx.rng.integers(0, len(pool), cfg.batch))
    a, b = pool.truth[idx], pool.twin[idx]
    src = a.images.to(ctx.device).float() / 127.5 - 1.0
    x = b.images.to(ctx.device).float() / 127.5 - 1.0
    z = pool.latents[idx].to(ctx.device)
    with ctx.autocast():
        rec, rec_own = ae.decoder(torch.cat((z, z)),
                                  torch.cat((b.planes(ctx.device), a.planes(ctx.device)))
                                  ).float().chunk(2)
    loss, info = _loss(rec, x, b.pose.to(ctx.device), cfg.region_weight)
    return _with_change(loss, info, rec - rec_own, x - src)


def _with_change(loss: torch.Tensor, info: dict[str, float], decoded: torch.Tensor,
                 truth: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """`loss` + the decoded change from a frame's motion to its twin's against the
    truth's change, squared, relative to the truth's (logged as "change": 1 is no
    change drawn, 0 all of it). Everything the two decodes share cancels in their
    difference, so this is a scale-free gradient on exactly what the motion must add
    (pixel for pixel an expression is a few percent of a few percent of the frame:
    nothing in the plain loss). Squared, not absolute: where a change is uncertain the
    L1 optimum is the median, no change at all, which is what a first trial with L1
    learned."""
    rel = (decoded - truth).pow(2).sum() / truth.pow(2).sum().clamp(min=1e-6)
    info["change"] = float(rel.detach())
    return loss + rel, info


def _planes(ae: TinyAutoencoder, b: FramePool, device: torch.device | str,
            ) -> torch.Tensor | None:
    """The motion planes of `b` for a decoder that reads them, else None (not built)."""
    return b.planes(device) if ae.cfg.decoder_motion else None


def _loss(rec: torch.Tensor, x: torch.Tensor, pose: torch.Tensor, region_weight: float,
          ) -> tuple[torch.Tensor, dict[str, float]]:
    """L1 + MSE of images in [-1, 1], x (1 + region_weight) on and around the face
    and hands drawn in `pose` (uint8 maps)."""
    diff = rec - x
    err = diff.abs() + diff.pow(2)
    if region_weight > 0:
        mask = part_mask(maps_float(pose)[:, None], pose.shape[-1])[:, 0]
        err = err * (1 + region_weight * F.interpolate(mask, size=x.shape[-2:]))
    return err.mean(), {"l1": float(diff.abs().mean().detach())}


@torch.no_grad()
def fold_latent_stats(ae: TinyAutoencoder, images: torch.Tensor, batch: int = 64) -> None:
    """Make latents per-channel zero-mean / unit-std over `images` (uint8, N,3,H,W) by
    rewriting encoder.out and decoder.stem in place (exactly invertible)."""
    dev = ae.encoder.out.weight.device
    zs = [ae.encode(images[i:i + batch].to(dev).float() / 127.5 - 1.0)
          for i in range(0, images.shape[0], batch)]
    z = torch.cat(zs)                                                   # (N, c, h, w)
    mean = z.mean(dim=(0, 2, 3))                                        # (c,)
    std = z.std(dim=(0, 2, 3)).clamp(min=1e-4)
    enc, dec = ae.encoder.out, ae.decoder.stem
    # encoder: z' = (W x + b - mean) / std
    enc.weight.div_(std[:, None, None, None])
    assert enc.bias is not None and dec.bias is not None
    enc.bias.sub_(mean).div_(std)
    # decoder stem: conv(std z' + mean) = (W * std) z' + (b + sum W * mean); the 3x3
    # conv is zero-padded, so the mean term is exact in the interior and off by the
    # padded taps on the one-pixel border (small; the decoder learned it either way)
    dec.bias.add_((dec.weight * mean[None, :, None, None]).sum(dim=(1, 2, 3)))
    dec.weight.mul_(std[None, :, None, None])


@torch.no_grad()
def reconstruction_psnr(ae: TinyAutoencoder, pool: FramePool, batch: int = 64) -> float:
    """Mean per-frame PSNR (dB, [0, 1] pixels) of decode(encode(x)) over the pool, each
    frame decoded with its own motion."""
    return _decoded_psnr(ae, pool, None, batch)


@torch.no_grad()
def rollout_psnr(ae: TinyAutoencoder, pool: RolloutPool, batch: int = 64) -> float:
    """Mean per-frame PSNR (dB) of the student's latents decoded (with their motion)
    against the ground truth: the output quality the decoder gives a stream."""
    return _decoded_psnr(ae, pool.truth, pool.latents, batch)


def _decoded_psnr(ae: TinyAutoencoder, truth: FramePool, latents: torch.Tensor | None,
                  batch: int) -> float:
    """Mean per-frame PSNR of `latents` (None: the truth's own encodings) decoded with
    the truth's motion, against the truth."""
    if len(truth) == 0:
        return float("nan")
    dev = ae.encoder.out.weight.device
    total = 0.0
    for i in range(0, len(truth), batch):
        b = truth[i:i + batch]
        x = b.images.to(dev).float() / 127.5 - 1.0
        z = ae.encode(x) if latents is None else latents[i:i + batch].to(dev)
        rec = ae.decode(z, _planes(ae, b, dev))
        total += psnr((rec + 1) / 2, (x + 1) / 2) * x.shape[0]
    return total / len(truth)
