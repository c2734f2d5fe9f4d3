"""The decoder that also reads the frame's motion (`decoder_motion`): it starts as the
decoder without it, reads motion only where the motion is, and checkpoints from before
it keep working."""

from __future__ import annotations

from pathlib import Path

import torch

from realtime.model.autoencoder import TinyAutoencoder
from realtime.model.bundle import AnimationModel
from realtime.model.checkpoint import add_decoder_motion, load_checkpoint, save_checkpoint
from realtime.model.config import ModelConfig, get_preset
from realtime.model.planes import N_MOTION_PLANES, motion_planes
from realtime.motion.types import FACE_FEATURES, PARTS, POSE_CHANNELS


def _planes(cfg: ModelConfig, n: int, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(n, N_MOTION_PLANES, cfg.pose_size, cfg.pose_size, generator=gen)


def _trained_ae(cfg: ModelConfig, seed: int) -> TinyAutoencoder:
    """A random motion-reading autoencoder whose motion outputs are non-zero, as if
    trained (they start at zero)."""
    ae = AnimationModel.random(cfg, seed=seed).ae
    for conv in ae.decoder.motion_out:
        assert isinstance(conv, torch.nn.Conv2d)
        torch.nn.init.normal_(conv.weight, std=0.5)
    return ae


def test_a_checkpoint_from_before_decoder_motion_decodes_the_same_after_upgrade(
        tmp_path: Path) -> None:
    cfg = get_preset("tiny").with_(decoder_motion=False)
    save_checkpoint(AnimationModel.random(cfg, seed=4), tmp_path / "old")
    old = load_checkpoint(tmp_path / "old")                 # no preset: as saved
    assert not old.cfg.decoder_motion
    new = load_checkpoint(tmp_path / "old", preset="tiny")  # the preset has it: added
    assert new.cfg == get_preset("tiny")
    assert add_decoder_motion(new) is new
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(3, cfg.latent_channels, cfg.latent_size, cfg.latent_size, generator=gen)
    with torch.no_grad():
        want = old.ae.decode(z)
        assert torch.equal(new.ae.decode(z, _planes(cfg, 3, gen)), want)   # any motion
        assert torch.equal(new.ae.decode(z), want)
    # every load of the same checkpoint is the same model (the new input conv too)
    again = load_checkpoint(tmp_path / "old", preset="tiny").state_dict()
    assert all(torch.equal(v, again[k]) for k, v in new.state_dict().items())


def test_motion_changes_the_decoded_frame_only_around_where_it_is_drawn() -> None:
    cfg = get_preset("tiny")
    ae = _trained_ae(cfg, seed=0)
    P = cfg.pose_size
    maps = torch.zeros(1, cfg.pose_channels, P, P)
    maps[0, POSE_CHANNELS.index("head"), 1, 1] = 1.0         # a head in the top-left corner
    face = torch.zeros(1, cfg.face_dim)
    smile = face.clone()
    smile[0, FACE_FEATURES.index("mouth_open")] = 1.0
    present = torch.ones(1, cfg.n_parts)
    z = torch.randn(1, cfg.latent_channels, cfg.latent_size, cfg.latent_size,
                    generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        base = ae.decode_driven(z, maps, face, present)
        d = (ae.decode_driven(z, maps, smile, present) - base).abs().sum(1)[0]   # (H, W)
        H = d.shape[-1]
        assert d[: H // 4, : H // 4].max() > 0              # the head's corner changes
        assert d[H // 2:, :].max() == 0 and d[:, H // 2:].max() == 0   # far away: nothing
        # an absent face paints nothing, whatever its features
        absent = present.clone()
        absent[0, PARTS.index("face")] = 0.0
        assert torch.equal(ae.decode_driven(z, maps, smile, absent),
                           ae.decode_driven(z, maps, face, absent))
        # no motion known decodes as all-zero planes
        zero = motion_planes(torch.zeros_like(maps), face, torch.zeros_like(present))
        assert torch.equal(ae.decode(z), ae.decode(z, zero))


def test_a_checkpoint_that_gained_decoder_motion_loads_under_a_preset_without_it(
        tmp_path: Path) -> None:
    # `train ae --decoder-of C --counterfactual W` makes a motion-reading decoder of a
    # `cpu` checkpoint; fine-tuning it again, or training from it, loads it under `cpu`
    cfg = get_preset("cpu")
    assert not cfg.decoder_motion
    model = add_decoder_motion(AnimationModel.random(cfg, seed=5))
    for conv in model.ae.decoder.motion_out:                 # as if trained: non-zero
        assert isinstance(conv, torch.nn.Conv2d)
        torch.nn.init.normal_(conv.weight, std=0.5)
    save_checkpoint(model, tmp_path / "motion")
    loaded = load_checkpoint(tmp_path / "motion", preset="cpu")
    assert loaded.cfg.decoder_motion                         # kept, not dropped
    saved = model.state_dict()
    assert all(torch.equal(v, saved[k]) for k, v in loaded.state_dict().items())
    assert loaded.state_dict().keys() == saved.keys()


def test_maps_drawn_finer_decode_as_their_average_at_the_decoder_s_own_size() -> None:
    # a student at pose_scale 4 (or eval beside a finer teacher) hands the decoder maps
    # at 4x the latent size; it reads them as the maps at 2x it was trained on
    cfg = get_preset("tiny")
    ae = _trained_ae(cfg, seed=2)
    gen = torch.Generator().manual_seed(3)
    P = cfg.pose_size
    fine = torch.rand(2, cfg.pose_channels, 2 * P, 2 * P, generator=gen)
    face = torch.rand(2, cfg.face_dim, generator=gen)
    present = torch.ones(2, cfg.n_parts)
    z = torch.randn(2, cfg.latent_channels, cfg.latent_size, cfg.latent_size, generator=gen)
    with torch.no_grad():
        got = ae.decode_driven(z, fine, face, present)
        want = ae.decode_driven(z, torch.nn.functional.avg_pool2d(fine, 2), face, present)
        assert torch.allclose(got, want, atol=1e-6)
        # and the fine maps do drive it (the check above is not of a decoder that ignores them)
        assert not torch.allclose(got, ae.decode_driven(z, fine.flip(-1), face, present))
