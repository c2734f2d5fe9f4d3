"""Streaming through the KV cache equals one dense masked forward over the sequence."""

from __future__ import annotations

import pytest
import torch

from realtime.model.bundle import AnimationModel
from realtime.model.cache import KVCache
from realtime.model.config import get_preset
from realtime.model.dense import forward_dense
from realtime.model.sampler import sample_chunk, timesteps

CFG = get_preset("tiny")
N_CHUNKS = 5                      # 10 frames through a window of 4: the ring wraps twice


def _inputs(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    N, ls, P = N_CHUNKS * CFG.chunk, CFG.latent_size, CFG.pose_size
    return {
        "ref": torch.randn(1, 1, CFG.latent_channels, ls, ls, generator=g),
        "noise": torch.randn(1, N, CFG.latent_channels, ls, ls, generator=g),
        "pose": torch.rand(1, N, CFG.pose_channels, P, P, generator=g),
        "face": torch.randn(1, N, CFG.face_dim, generator=g),
        "presence": torch.rand(1, N, CFG.n_parts, generator=g),
    }


def _stream(model: AnimationModel, x: dict[str, torch.Tensor], steps: int, mode: str):
    dit = model.dit
    cache = KVCache(CFG.layout(), CFG.depth, CFG.heads, CFG.head_dim).setup()
    cache.set_sink(*dit.encode_reference(x["ref"]))
    outs, written, written_t = [], [], 0.0
    for c in range(N_CHUNKS):
        s = slice(c * CFG.chunk, (c + 1) * CFG.chunk)
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


@pytest.fixture(scope="module")
def model() -> AnimationModel:
    return AnimationModel.random(CFG, seed=1)


@pytest.mark.parametrize("mode", ["clean", "last_step"])
@pytest.mark.parametrize("steps", [1, 3])
def test_streaming_equals_dense_forward(model: AnimationModel, mode: str, steps: int) -> None:
    x = _inputs()
    streamed, hist, hist_t = _stream(model, x, steps, mode)
    batched = _batch(model, x, hist, hist_t, steps)
    assert hist_t == (0.0 if mode == "clean" else timesteps(steps)[-2])
    torch.testing.assert_close(streamed, batched, rtol=1e-4, atol=1e-4)


def test_history_and_reference_really_matter(model: AnimationModel) -> None:
    """The equality above is not vacuous: the dense output moves when the history
    or the reference moves, so a cache that dropped them would fail it."""
    x = _inputs()
    streamed, hist, hist_t = _stream(model, x, 2, "clean")
    base = _batch(model, x, hist, hist_t, 2)
    other_hist = _batch(model, x, hist + 2.0 * torch.randn_like(hist), hist_t, 2)
    other_ref = _batch(model, {**x, "ref": x["ref"] + 1.0}, hist, hist_t, 2)
    last = slice(-CFG.chunk, None)                      # a chunk that sees only ring slots
    # both effects are far above the 1e-4 tolerance of the equality test
    assert (other_hist[:, last] - base[:, last]).abs().max() > 2e-3
    assert (other_ref[:, last] - base[:, last]).abs().max() > 2e-3
