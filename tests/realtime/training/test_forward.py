"""The training forward sees exactly what streaming inference sees: the same
velocities for every chunk, in the conditional and the unconditional (CFG) branch."""

from __future__ import annotations

import pytest
import torch

from realtime.model.config import ModelConfig, get_preset
from realtime.model.dense import forward_dense
from realtime.model.dit import StudentDiT
from realtime.training.forward import drop_motion, forward_train
from realtime.training.student import new_cache, set_reference
from realtime.training.teacher import (
    flow_times,
    teacher_sample_chunk,
    uncond_view,
    write_history,
)


def _inputs(cfg: ModelConfig, B: int = 2, N: int = 8) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    c, h, P = cfg.latent_channels, cfg.latent_size, cfg.pose_size
    return {
        "ref": torch.randn(B, 1, c, h, h, generator=g),
        "hist": torch.randn(B, N, c, h, h, generator=g),
        "query": torch.randn(B, N, c, h, h, generator=g),
        "pose": torch.rand(B, N, 16, P, P, generator=g),
        "face": torch.randn(B, N, 12, generator=g),
        "presence": torch.rand(B, N, 4, generator=g),
    }


@pytest.fixture(scope="module")
def model() -> StudentDiT:
    torch.manual_seed(0)
    m = StudentDiT(get_preset("tiny"))
    m.initialize_weights(zero_init=False)       # every path has a visible effect
    return m.eval()


def test_training_forward_matches_the_models_dense_reference(model: StudentDiT) -> None:
    x = _inputs(model.cfg)
    B, N = x["hist"].shape[:2]
    ref = forward_dense(model, x["ref"], x["hist"], 0.0, x["query"], 0.6, x["pose"],
                        x["face"], x["presence"])
    got = forward_train(model, x["ref"], x["hist"], torch.zeros(B, N), x["query"],
                        torch.full((B, N), 0.6), x["pose"], x["face"], x["presence"])
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("keep", [True, False])
def test_training_forward_matches_streaming_chunk_by_chunk(model: StudentDiT, keep: bool) -> None:
    """Stream the history through the KV cache as inference does; each query chunk's
    velocity (conditional, or with reference + motion dropped = the CFG branch the
    teacher's sampler uses) equals the training forward's."""
    cfg = model.cfg
    x = _inputs(cfg)
    B, N = x["hist"].shape[:2]
    K = cfg.chunk
    t = torch.rand(B, N // K).repeat_interleave(K, dim=1)           # per-chunk flow times
    keep_t = torch.full((B,), keep)
    want = forward_train(model, x["ref"], x["hist"], torch.zeros(B, N), x["query"], t,
                         x["pose"], x["face"], x["presence"], keep_ref=keep_t,
                         keep_motion=keep_t)
    with torch.no_grad():
        cache = new_cache(model, B, "cpu")
        set_reference(model, cache, x["ref"])
        for ch in range(N // K):
            s = slice(ch * K, (ch + 1) * K)
            cond = (x["pose"][:, s], x["face"][:, s], x["presence"][:, s])
            q_cond = cond if keep else drop_motion(*cond, keep_t)
            view = cache if keep else uncond_view(cache)
            v, _, _ = model.forward_chunk(x["query"][:, s], t[:, s], *q_cond, view)
            assert v is not None
            torch.testing.assert_close(v, want[:, s], atol=1e-4, rtol=1e-4)
            write_history(model, cache, x["hist"][:, s], 0.0, *cond)


@pytest.mark.parametrize("guidance", [1.0, 2.0])
def test_guided_sampling_in_batched_forwards_equals_its_two_branches(
    model: StudentDiT, guidance: float,
) -> None:
    """The teacher's sampler runs both guidance branches as one forward over a paired
    cache. Its chunk must equal Euler steps of v_u + g (v_c - v_u) computed branch by
    branch, for sessions in different states (one with a history, one fresh), and
    without its write the cache must be left as it was."""
    x = _inputs(model.cfg)
    B, K = x["hist"].shape[0], model.cfg.chunk
    s = slice(0, K)
    cond = (x["pose"][:, s], x["face"][:, s], x["presence"][:, s])
    dropped = drop_motion(*cond, torch.zeros(B, dtype=torch.bool))
    steps, noise = 3, x["query"][:, s]
    with torch.no_grad():
        cache = new_cache(model, B, "cpu")
        set_reference(model, cache, x["ref"])
        write_history(model, cache, x["hist"][:, s], 0.0, *cond)
        cache.reset(rows=torch.arange(B) == B - 1)         # the last session starts again
        before = cache.state_dict()
        got = teacher_sample_chunk(model, cache, noise, *cond, steps, guidance,
                                   write=False).latents
        ts, want, gap = flow_times(steps), noise, 0.0
        for i in range(steps):
            t = torch.full((B, K), ts[i])
            v_c, _, _ = model.forward_chunk(want, t, *cond, cache)
            v_u, _, _ = model.forward_chunk(want, t, *dropped, uncond_view(cache))
            assert v_c is not None and v_u is not None
            gap = max(gap, float((v_c - v_u).abs().mean()))
            want = want + (ts[i + 1] - ts[i]) * (v_u + guidance * (v_c - v_u))
    assert gap > 1e-3                                   # the branches differ
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    for name, value in before.items():
        assert torch.equal(getattr(cache, name), value), name
