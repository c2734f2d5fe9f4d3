"""Autoencoder stage: it learns, latent normalisation keeps reconstructions, a decoder
with motion learns from the motion, and the region weight weighs faces and hands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from realtime.model.autoencoder import TinyAutoencoder
from realtime.model.config import get_preset
from realtime.training.ae import AEConfig, ae_step, fold_latent_stats, reconstruction_psnr
from realtime.training.data import FramePool, load_clips, studio_pool
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
    cfg = get_preset("tiny")
    ae = TinyAutoencoder(cfg)
    images = _images()
    pool = FramePool.undriven(images, cfg.pose_size)
    opt = torch.optim.Adam(ae.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        ctx = StepContext(0, torch.device("cpu"), np.random.default_rng(0),
                          torch.Generator().manual_seed(0))
        loss, _ = ae_step(ae, pool, ctx, AEConfig(batch=8))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0], losses

    before = reconstruction_psnr(ae, pool)
    fold_latent_stats(ae, images)
    with torch.no_grad():
        z = ae.encode(images.float() / 127.5 - 1)
    per_channel_std = z.std(dim=(0, 2, 3))
    torch.testing.assert_close(per_channel_std, torch.ones_like(per_channel_std),
                               atol=0.02, rtol=0)
    assert z.mean(dim=(0, 2, 3)).abs().max() < 0.02
    # only the decoder's zero-padded border sees the mean shift: small change
    assert abs(reconstruction_psnr(ae, pool) - before) < 0.5


def _ctx(seed: int) -> StepContext:
    return StepContext(0, torch.device("cpu"), np.random.default_rng(seed),
                       torch.Generator().manual_seed(seed))


def test_a_decoder_with_motion_learns_what_only_the_motion_says(tiny_data: Path) -> None:
    """Latents that carry nothing (the encoder's output zeroed): a decoder without
    motion can learn only the mean frame; with the studio frames' motion it learns
    where the character is."""
    cfg = get_preset("tiny")
    pool = studio_pool(load_clips(tiny_data, "train", cfg))
    result = {}
    for motion in (False, True):
        torch.manual_seed(0)
        ae = TinyAutoencoder(cfg.with_(decoder_motion=motion))
        ae.encoder.requires_grad_(False)
        torch.nn.init.zeros_(ae.encoder.out.weight)
        torch.nn.init.zeros_(ae.encoder.out.bias)   # type: ignore[arg-type]
        opt = torch.optim.Adam(ae.decoder.parameters(), lr=3e-3)
        for step in range(300):
            loss, _ = ae_step(ae, pool, _ctx(step), AEConfig(batch=16, latent_noise=0.0))
            opt.zero_grad()
            loss.backward()
            opt.step()
        result[motion] = reconstruction_psnr(ae, pool)
    assert result[True] > result[False] + 1.0, result


def test_region_weight_adds_the_face_and_hand_error_only(tiny_data: Path) -> None:
    cfg = get_preset("tiny")
    pool = studio_pool(load_clips(tiny_data, "train", cfg))
    torch.manual_seed(0)
    ae = TinyAutoencoder(cfg)
    loss = {r: float(ae_step(ae, pool, _ctx(3), AEConfig(batch=16, region_weight=r))[0].detach())
            for r in (0.0, 2.0, 4.0)}
    assert loss[2.0] > loss[0.0]
    # linear in R: the extra term is R x the (fixed) error on and around face and hands
    assert loss[4.0] - loss[0.0] == pytest.approx(2 * (loss[2.0] - loss[0.0]), rel=1e-4)


def test_temporal_weight_adds_the_frame_to_frame_change_error(tiny_data: Path) -> None:
    """`--temporal-weight W`: consecutive frames of one stream, and the loss adds W x
    the L1 of the decoded change against the truth's change (linear in W); a
    decoder whose change matches the truth's pays nothing extra."""
    from realtime.training.ae import rollout_step
    from realtime.training.rollouts import RolloutPool

    cfg = get_preset("tiny")
    images = _images(8)
    torch.manual_seed(0)
    ae = TinyAutoencoder(cfg)
    with torch.no_grad():
        lat = torch.randn(8, cfg.latent_channels, cfg.latent_size, cfg.latent_size)
    # two streams of four frames: frame 3 has no next one in its stream
    has_next = torch.tensor([True, True, True, False] * 2)
    pool = RolloutPool(lat, FramePool.undriven(images, cfg.pose_size), has_next)
    loss = {w: float(rollout_step(ae, pool, _ctx(5), AEConfig(batch=8, temporal_weight=w))[0]
                     .detach()) for w in (1.0, 2.0, 4.0)}
    assert loss[2.0] > loss[1.0]
    assert loss[4.0] - loss[2.0] == pytest.approx(2 * (loss[2.0] - loss[1.0]), rel=1e-4)
    # a stream whose latents and truth do not change between frames: no temporal cost
    still = RolloutPool(lat[:1].repeat(8, 1, 1, 1),
                        FramePool.undriven(images[:1].repeat(8, 1, 1, 1), cfg.pose_size),
                        has_next)
    _, info = rollout_step(ae, still, _ctx(5), AEConfig(batch=8, temporal_weight=1.0))
    assert info["temporal"] == 0.0


def test_counterfactual_training_makes_the_decoder_draw_the_motion_not_the_latents(
        tiny_data: Path) -> None:
    """One frame's latents decoded with its own motion and with its counterfactual
    twin's (expression and fingers played backwards): how much of the truth's change
    from frame to twin does the decoded change reproduce? A decoder trained only on
    its own encodings learns to take the face from the latents, which already show
    it; trained also on latents paired with the twin's motion against the twin's
    frame (`counterfactual_step`), it draws more of the change from the motion."""
    from realtime.training.ae import counterfactual_step
    from realtime.training.studio import counterfactual_split

    cfg = get_preset("tiny")
    assert cfg.decoder_motion
    clips, twin_clips = counterfactual_split(tiny_data, "train", cfg)
    pool, twins = studio_pool(clips), studio_pool(twin_clips)
    changed = (pool.images != twins.images).flatten(1).any(dim=1)
    assert changed.sum() > len(pool) // 2          # the performers' faces do move

    def response(ae: TinyAutoencoder) -> float:
        a, b = pool[changed], twins[changed]
        with torch.no_grad():
            z = ae.encode(a.images.float() / 127.5 - 1)
            out = ae.decode(z, b.planes()) - ae.decode(z, a.planes())
        truth = (b.images.float() - a.images.float()) / 127.5
        return float((out * truth).sum() / truth.pow(2).sum())

    torch.manual_seed(0)
    trained = TinyAutoencoder(cfg)
    opt = torch.optim.Adam(trained.parameters(), lr=3e-3)
    for step in range(100):                         # an autoencoder first
        loss, _ = ae_step(trained, pool, _ctx(step), AEConfig(batch=16))
        opt.zero_grad()
        loss.backward()
        opt.step()
    gain = {}
    for weight in (0.0, 4.0):                       # then its decoder, with or without
        ae = TinyAutoencoder(cfg)
        ae.load_state_dict(trained.state_dict())
        ae.encoder.requires_grad_(False)
        opt = torch.optim.Adam(ae.decoder.parameters(), lr=3e-3)
        for step in range(300):
            ctx = _ctx(1000 + step)
            loss, _ = ae_step(ae, pool, ctx, AEConfig(batch=16))
            if weight:
                loss = loss + weight * counterfactual_step(ae, pool, twins, ctx,
                                                           AEConfig(batch=16))[0]
            opt.zero_grad()
            loss.backward()
            opt.step()
        gain[weight] = response(ae)
    assert gain[4.0] > 3 * gain[0.0] and gain[4.0] > 0.2, gain


def test_counterfactual_term_on_streams_draws_the_change_from_the_motion(
        tiny_data: Path, tiny_ckpt: Path) -> None:
    """`--counterfactual-streams`: the latents a student streamed for a clip, with the
    clip's counterfactual twin kept beside them frame for frame. Those latents are the
    same whichever face the truth shows (here a random-init student's: they show
    nothing), so a decoder must draw the change from clip to twin from the motion; with
    `counterfactual_rollout_step` it draws more of it, on those very latents, than the
    same decoder trained on the streams without it."""
    from realtime.model.checkpoint import load_checkpoint
    from realtime.training.ae import counterfactual_rollout_step, rollout_step
    from realtime.training.rollouts import student_rollouts
    from realtime.training.studio import counterfactual_split

    model = load_checkpoint(tiny_ckpt, "tiny")
    clips, twin_clips = counterfactual_split(tiny_data, "train", model.cfg)
    pool = student_rollouts(model, clips, (0,), twin_clips)
    assert pool.twin is not None and len(pool.twin) == len(pool)
    twin = pool.twin
    n = len(clips[1].frames) - len(clips[1].frames) % model.cfg.chunk
    assert np.array_equal(pool.twin.images[n:2 * n].permute(0, 2, 3, 1).numpy(),
                          twin_clips[1].frames[:n])                 # frame for frame
    changed = (pool.truth.images != pool.twin.images).flatten(1).any(dim=1)
    assert changed.sum() > len(pool) // 2

    def response(ae: TinyAutoencoder) -> float:
        a, b = pool.truth[changed], twin[changed]
        z = pool.latents[changed]
        with torch.no_grad():
            out = ae.decode(z, b.planes()) - ae.decode(z, a.planes())
        truth = (b.images.float() - a.images.float()) / 127.5
        return float((out * truth).sum() / truth.pow(2).sum())

    gain = {}
    for weight in (0.0, 4.0):
        torch.manual_seed(0)
        ae = TinyAutoencoder(model.cfg)
        ae.load_state_dict(model.ae.state_dict())
        ae.encoder.requires_grad_(False)
        opt = torch.optim.Adam(ae.decoder.parameters(), lr=3e-3)
        for step in range(600):                     # the decoder starts at random
            ctx = _ctx(2000 + step)
            loss, _ = rollout_step(ae, pool, ctx, AEConfig(batch=16))
            if weight:
                loss = loss + weight * counterfactual_rollout_step(ae, pool, ctx,
                                                                   AEConfig(batch=16))[0]
            opt.zero_grad()
            loss.backward()
            opt.step()
        gain[weight] = response(ae)
    # measured: -0.007 without the term, 0.19 with it
    assert gain[4.0] > 3 * max(gain[0.0], 0.0) and gain[4.0] > 0.12, gain
    no_twins = student_rollouts(model, clips[:1], (0,))
    with pytest.raises(ValueError, match="twins"):
        counterfactual_rollout_step(model.ae, no_twins, _ctx(0), AEConfig(batch=4))
