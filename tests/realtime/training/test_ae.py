"""Autoencoder stage: it learns, and latent normalisation keeps reconstructions."""

from __future__ import annotations

import numpy as np
import torch

from realtime.model.autoencoder import TinyAutoencoder
from realtime.model.config import get_preset
from realtime.training.ae import AEConfig, ae_step, fold_latent_stats, reconstruction_psnr
from realtime.training.loop import StepContext


def _images(n: int = 32, size: int = 32) -> torch.Tensor:
    """Smooth synthetic images (gradients + a disc), uint8 (n, 3, size, size)."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size),
                            indexing="ij")
    out = []
    for _ in range(n):
        a, b, c, r = torch.rand(4, generator=g)
        disc = ((xx - a) ** 2 + (yy - b) ** 2 < (0.1 + 0.2 * r) ** 2).float()
        img = torch.stack((xx * a + disc * 0.5, yy * b, (1 - xx) * c + disc * 0.3))
        out.append((img.clamp(0, 1) * 255).byte())
    return torch.stack(out)


def test_ae_step_lowers_the_loss_and_folding_normalises_latents() -> None:
    torch.manual_seed(0)
    ae = TinyAutoencoder(get_preset("tiny"))
    images = _images()
    opt = torch.optim.Adam(ae.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        ctx = StepContext(0, torch.device("cpu"), np.random.default_rng(0),
                          torch.Generator().manual_seed(0))
        loss, _ = ae_step(ae, images, ctx, AEConfig(batch=8))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0], losses

    before = reconstruction_psnr(ae, images)
    fold_latent_stats(ae, images)
    with torch.no_grad():
        z = ae.encode(images.float() / 127.5 - 1)
    per_channel_std = z.std(dim=(0, 2, 3))
    torch.testing.assert_close(per_channel_std, torch.ones_like(per_channel_std),
                               atol=0.02, rtol=0)
    assert z.mean(dim=(0, 2, 3)).abs().max() < 0.02
    # only the decoder's zero-padded border sees the mean shift: small change
    assert abs(reconstruction_psnr(ae, images) - before) < 0.5
