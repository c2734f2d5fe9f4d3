"""Microbenchmarks of the model: one DiT chunk at each step count, one AE decode.

    pytest bench/test_model.py --benchmark-only

One call = what the engine does per chunk of K frames, in the steady state of a long
stream (full window): `sample_chunk` with the preset's cache-write mode (the extra
t=0 pass included in 'clean' mode) but without writing the cache, so every call sees
the same context; and the autoencoder decode of the chunk's K latents. Preset: cpu on
a CPU, gpu with CUDA. Random weights (the time does not depend on their values).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from realtime.engine import configure_torch_threads
from realtime.model.bundle import AnimationModel
from realtime.model.cache import KVCache
from realtime.model.checkpoint import prepare
from realtime.model.config import default_preset, get_preset
from realtime.model.sampler import sample_chunk

PRESET = default_preset()
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.fixture(scope="module")
def setup() -> dict[str, Any]:
    configure_torch_threads()
    cfg = get_preset(PRESET)
    model = prepare(AnimationModel.random(cfg), DEVICE)
    dt, dev = model.dtype, model.device
    cache = KVCache(cfg.layout(), cfg.depth, cfg.heads, cfg.head_dim, device=dev,
                    dtype=dt).setup()
    ls, K = cfg.latent_size, cfg.chunk
    with torch.inference_mode():
        ref = torch.randn(1, cfg.ref_frames, cfg.latent_channels, ls, ls, device=dev, dtype=dt)
        cache.set_sink(*model.dit.encode_reference(ref))
        for _ in range(cfg.window // K + 1):              # fill the window
            noise = torch.randn(1, K, cfg.latent_channels, ls, ls, device=dev, dtype=dt)
            cond = _conditions(cfg, dev, dt)
            sample_chunk(model.dit, cache, noise, *cond, steps=1)
    return {"model": model, "cache": cache, "cfg": cfg, "cond": _conditions(cfg, dev, dt),
            "noise": torch.randn(1, K, cfg.latent_channels, ls, ls, device=dev, dtype=dt)}


def _conditions(cfg: Any, dev: torch.device, dt: torch.dtype,
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    K, P = cfg.chunk, cfg.pose_size
    return (torch.rand(1, K, cfg.pose_channels, P, P, device=dev, dtype=dt),
            torch.randn(1, K, cfg.face_dim, device=dev, dtype=dt),
            torch.ones(1, K, cfg.n_parts, device=dev, dtype=dt))


def _sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


@pytest.mark.parametrize("steps", [1, 2, 3, 4])
def test_dit_chunk(benchmark: Any, setup: dict[str, Any], steps: int) -> None:
    m, cache, cfg = setup["model"], setup["cache"], setup["cfg"]

    def one_chunk() -> None:
        with torch.inference_mode():
            pose, face, presence = setup["cond"]
            sample_chunk(m.dit, cache, setup["noise"], pose, face, presence, steps=steps,
                         cache_write=cfg.cache_write, write=False)
        _sync()

    benchmark.extra_info.update(preset=PRESET, steps=steps, frames=cfg.chunk)
    benchmark.pedantic(one_chunk, rounds=10, iterations=1, warmup_rounds=2)


def test_ae_decode_chunk(benchmark: Any, setup: dict[str, Any]) -> None:
    m, cfg = setup["model"], setup["cfg"]
    z = setup["noise"][0]

    def decode() -> None:
        with torch.inference_mode():
            m.ae.decode(z)
        _sync()

    benchmark.extra_info.update(preset=PRESET, frames=cfg.chunk)
    benchmark.pedantic(decode, rounds=20, iterations=1, warmup_rounds=2)


@pytest.mark.parametrize("framing", ["full", "face"])
def test_face_paste_chunk(benchmark: Any, setup: dict[str, Any], framing: str) -> None:
    """The face paste of a chunk (a built-in character's face from its reference,
    warped to an open mouth, its inside drawn in), at the preset's resolution: the
    smallest and the largest face the shots give."""
    from realtime.avatars.character import make_character
    from realtime.avatars.render import framing_for, render_reference
    from realtime.engine import images_to_tensor
    from realtime.model.face_paste import HeadShape, paste_faces

    m, cfg = setup["model"], setup["cfg"]
    char = make_character(5)
    cam = framing_for(char, framing)
    shape = HeadShape.of(char, cam)
    ref = images_to_tensor([render_reference(char, cfg.resolution, framing=cam)],
                           cfg.resolution, m.device, m.dtype)[0]
    frames = torch.zeros(cfg.chunk, 3, cfg.resolution, cfg.resolution, device=m.device,
                         dtype=m.dtype)
    face = torch.zeros(cfg.chunk, 12, device=m.device)
    face[:, 9] = 0.8                                         # mouth open
    head = torch.tensor([[*shape.ears, shape.torso]] * cfg.chunk)
    pose = setup["cond"][0][0]

    def paste() -> None:
        with torch.inference_mode():
            paste_faces(frames, ref, shape, face, head, pose)
        _sync()

    benchmark.extra_info.update(preset=PRESET, frames=cfg.chunk, framing=framing)
    benchmark.pedantic(paste, rounds=30, iterations=1, warmup_rounds=3)


@pytest.mark.parametrize("framing", ["full", "upper"])
def test_hand_paste_chunk(benchmark: Any, setup: dict[str, Any], framing: str) -> None:
    """The hand paste of a chunk (both hands of a built-in character drawn in its
    skin), at the preset's resolution: a full-body shot's small hands and an upper-body
    shot's large ones, raised before the chest."""
    from realtime.avatars.character import make_character
    from realtime.avatars.render import framing_for, rest_pose
    from realtime.model.hand_paste import paste_hands

    m, cfg = setup["model"], setup["cfg"]
    char = make_character(5)
    cam = framing_for(char, framing)
    pose = rest_pose(char)
    chest = (pose.body[11] + pose.body[12]) / 2 * 0.5 + (pose.body[23] + pose.body[24]) / 4
    hands = np.stack([h - h[9] + chest + np.array([dx, 0.0, 0.0]) for h, dx in
                      ((char.rest_hand("left"), 0.1), (char.rest_hand("right"), -0.1))])
    hands[..., :2] = (hands[..., :2] - np.asarray(cam.center)) * cam.zoom + 0.5
    hands_t = torch.from_numpy(hands.astype(np.float32))[None].expand(cfg.chunk, -1, -1, -1)
    frames = torch.zeros(cfg.chunk, 3, cfg.resolution, cfg.resolution, device=m.device,
                         dtype=m.dtype)
    skin = torch.tensor([0.7, 0.4, 0.2], device=m.device)
    presence = torch.ones(cfg.chunk, 4)

    def paste() -> None:
        with torch.inference_mode():
            paste_hands(frames, skin, hands_t, presence)
        _sync()

    benchmark.extra_info.update(preset=PRESET, frames=cfg.chunk, framing=framing)
    benchmark.pedantic(paste, rounds=30, iterations=1, warmup_rounds=3)
