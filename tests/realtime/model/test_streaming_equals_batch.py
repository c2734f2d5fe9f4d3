"""Streaming through the KV cache equals one dense masked forward over the sequence,
with tokens of 2x2 latent pixels (the `tiny` and `cpu` presets) and of 4x4 (`cpu32`)."""

from __future__ import annotations

import pytest
import torch

from realtime.model.bundle import AnimationModel
from realtime.model.cache import KVCache
from realtime.model.config import ModelConfig, get_preset
from realtime.model.dense import forward_dense
from realtime.model.sampler import sample_chunk, timesteps

TINY = get_preset("tiny")
# `tiny` on latents twice as fine, each token 4x4 of them: the `cpu32` preset's shape
# (patchify, unpatchify and the pose encoder's pooling at patch 4) at `tiny`'s size
FINE = TINY.with_(ae_widths=(8,), patch=4)
N_CHUNKS = 5                      # 10 frames through a window of 4: the ring wraps twice


def _inputs(cfg: ModelConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    N, ls, P = N_CHUNKS * cfg.chunk, cfg.latent_size, cfg.pose_size
    return {
        "ref": torch.randn(1, 1, cfg.latent_channels, ls, ls, generator=g),
        "noise": torch.randn(1, N, cfg.latent_channels, ls, ls, generator=g),
        "pose": torch.rand(1, N, cfg.pose_channels, P, P, generator=g),
        "face": torch.randn(1, N, cfg.face_dim, generator=g),
        "presence": torch.rand(1, N, cfg.n_parts, generator=g),
    }


def _stream(model: AnimationModel, x: dict[str, torch.Tensor], steps: int, mode: str):
    dit, cfg = model.dit, model.cfg
    cache = KVCache(cfg.layout(), cfg.depth, cfg.heads, cfg.head_dim).setup()
    cache.set_sink(*dit.encode_reference(x["ref"]))
    outs, written, written_t = [], [], 0.0
    for c in range(N_CHUNKS):
        s = slice(c * cfg.chunk, (c + 1) * cfg.chunk)
        r = sample_chunk(dit, cache, x["noise"][:, s], x["pose"][:, s], x["face"][:, s],
                         x["presence"][:, s], steps, cache_write=mode)
        outs.append(r.latents)
        written.append(r.written)
        written_t = r.written_t
    return torch.cat(outs, 1), torch.cat(written, 1), written_t


def _batch(model: AnimationModel, x: dict[str, torch.Tensor], hist: torch.Tensor,
           hist_t: float, steps: int) -> torch.Tensor:
    ts = timesteps(steps)
    z = x["noise"]
    for i in range(steps):
        v = forward_dense(model.dit, x["ref"], hist, hist_t, z, ts[i], x["pose"], x["face"],
                          x["presence"])
        z = z + (ts[i + 1] - ts[i]) * v
    return z


@pytest.fixture(scope="module", params=[TINY, FINE], ids=["patch2", "patch4"])
def model(request: pytest.FixtureRequest) -> AnimationModel:
    return AnimationModel.random(request.param, seed=1)


@pytest.mark.parametrize("mode", ["clean", "last_step"])
@pytest.mark.parametrize("steps", [1, 3])
def test_streaming_equals_dense_forward(model: AnimationModel, mode: str, steps: int) -> None:
    x = _inputs(model.cfg)
    streamed, hist, hist_t = _stream(model, x, steps, mode)
    batched = _batch(model, x, hist, hist_t, steps)
    assert hist_t == (0.0 if mode == "clean" else timesteps(steps)[-2])
    torch.testing.assert_close(streamed, batched, rtol=1e-4, atol=1e-4)


def test_history_and_reference_really_matter(model: AnimationModel) -> None:
    """The equality above is not vacuous: the dense output moves when the history
    or the reference moves, so a cache that dropped them would fail it."""
    x = _inputs(model.cfg)
    streamed, hist, hist_t = _stream(model, x, 2, "clean")
    base = _batch(model, x, hist, hist_t, 2)
    other_hist = _batch(model, x, hist + 2.0 * torch.randn_like(hist), hist_t, 2)
    other_ref = _batch(model, {**x, "ref": x["ref"] + 1.0}, hist, hist_t, 2)
    last = slice(-model.cfg.chunk, None)        # a chunk that sees only ring slots
    # both effects are far above the 1e-4 tolerance of the equality test
    assert (other_hist[:, last] - base[:, last]).abs().max() > 2e-3
    assert (other_ref[:, last] - base[:, last]).abs().max() > 2e-3
