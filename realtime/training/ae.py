"""Autoencoder stage: reconstruction training, latent normalisation, held-out PSNR.

Loss: L1 + MSE on pixels in [-1, 1]. The decoder also sees slightly noised latents
(`latent_noise` of the batch's latent std), so it stays graceful on the imperfect
latents a few-step student produces, instead of only on exact encodings.

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
from realtime.training.loop import StepContext
from realtime.training.metrics import psnr


@dataclass
class AEConfig:
    batch: int = 16
    latent_noise: float = 0.1


def ae_step(
    ae: TinyAutoencoder, images: torch.Tensor, ctx: StepContext, cfg: AEConfig,
) -> tuple[torch.Tensor, dict[str, float]]:
    """One reconstruction loss on a uint8 image pool (N, 3, H, W): draws a batch."""
    idx = torch.from_numpy(ctx.rng.integers(0, images.shape[0], cfg.batch))
    x = images[idx].to(ctx.device).float() / 127.5 - 1.0                # (B, 3, H, W)
    if bool(ctx.rng.random() < 0.5):                                    # flip augmentation
        x = x.flip(-1)
    with ctx.autocast():
        z = ae.encode(x)
        noise = torch.randn(z.shape, generator=ctx.gen).to(z.device, z.dtype)
        z = z + cfg.latent_noise * z.detach().std() * noise
        rec = ae.decoder(z).float()
    loss = F.l1_loss(rec, x) + F.mse_loss(rec, x)
    return loss, {"l1": float(F.l1_loss(rec, x).detach())}


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
def reconstruction_psnr(ae: TinyAutoencoder, images: torch.Tensor, batch: int = 64) -> float:
    """Mean per-frame PSNR (dB, [0, 1] pixels) of decode(encode(x)) on uint8 images."""
    if images.shape[0] == 0:
        return float("nan")
    dev = ae.encoder.out.weight.device
    total = 0.0
    for i in range(0, images.shape[0], batch):
        x = images[i:i + batch].to(dev).float() / 127.5 - 1.0
        rec = ae.decode(ae.encode(x))
        total += psnr((rec + 1) / 2, (x + 1) / 2) * x.shape[0]
    return total / images.shape[0]
