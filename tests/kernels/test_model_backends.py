"""The whole model on the `tiny` preset streams the same frames whether its kernels
run as PyTorch or as Triton (interpreted): fp32 and bf16, two sessions with
different histories, long enough for the ring window to wrap."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from kernels._dispatch import force_backend, kernel_module
from realtime.model.bundle import AnimationModel
from realtime.model.cache import KVCache
from realtime.model.config import get_preset
from realtime.model.sampler import sample_chunk

CFG = get_preset("tiny")
B = 2                       # sessions in one batch
N_CHUNKS = 3                # 6 frames through a window of 4: the ring wraps


def stream(model: AnimationModel, dtype: torch.dtype, backend: str) -> torch.Tensor:
    """Latents (B, N_CHUNKS*K, c, h, w) streamed from fixed random inputs."""
    g = torch.Generator().manual_seed(7)
    ls, P, K = CFG.latent_size, CFG.pose_size, CFG.chunk
    ref = torch.randn(B, 1, CFG.latent_channels, ls, ls, generator=g)
    noise = torch.randn(B, N_CHUNKS * K, CFG.latent_channels, ls, ls, generator=g)
    pose = torch.rand(B, N_CHUNKS * K, CFG.pose_channels, P, P, generator=g)
    face = torch.randn(B, N_CHUNKS * K, CFG.face_dim, generator=g)
    presence = torch.rand(B, N_CHUNKS * K, CFG.n_parts, generator=g)
    model = model.to(dtype)
    cache = KVCache(CFG.layout(), CFG.depth, CFG.heads, CFG.head_dim, batch=B,
                    dtype=dtype).setup()
    outs = []
    with force_backend(backend), torch.no_grad():  # type: ignore[arg-type]
        cache.set_sink(*model.dit.encode_reference(ref.to(dtype)))
        for c in range(N_CHUNKS):
            s = slice(c * K, (c + 1) * K)
            if c == 1:                          # session 1 restarts: a shorter history
                cache.window_len[1] = 0
            r = sample_chunk(model.dit, cache, noise[:, s].to(dtype), pose[:, s].to(dtype),
                             face[:, s].to(dtype), presence[:, s].to(dtype), steps=2)
            outs.append(r.latents.float())
    return torch.cat(outs, dim=1)


@pytest.fixture(scope="module")
def model() -> AnimationModel:
    return AnimationModel.random(CFG, seed=3)


@pytest.fixture
def triton_calls(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """Counts the Triton kernels the model really launches."""
    calls: Counter = Counter()
    for name, fn in (("kernels.triton_attention", "chunk_attention_triton"),
                     ("kernels.triton_norm", "adaln_norm_triton")):
        mod = kernel_module(name, torch.device("cpu"))
        real = getattr(mod, fn)

        def spy(*a, _real=real, _fn=fn, **kw):
            calls[_fn] += 1
            return _real(*a, **kw)

        monkeypatch.setattr(mod, fn, spy)
    return calls


def test_fp32_backends_agree(model: AnimationModel, triton_calls: Counter) -> None:
    torch_out = stream(model, torch.float32, "torch")
    assert not triton_calls
    triton_out = stream(model, torch.float32, "triton")
    assert triton_calls["chunk_attention_triton"] > 0 and triton_calls["adaln_norm_triton"] > 0
    assert torch_out.abs().mean() > 0.1                       # a real signal, not zeros
    torch.testing.assert_close(triton_out, torch_out, rtol=1e-4, atol=1e-4)


def test_bf16_backends_agree(model: AnimationModel, triton_calls: Counter) -> None:
    """In bf16 both backends err against the fp32 stream; they must agree with each
    other within twice the PyTorch backend's own bf16 error."""
    exact = stream(model, torch.float32, "torch")
    torch_out = stream(model, torch.bfloat16, "torch")
    triton_out = stream(model, torch.bfloat16, "triton")
    assert triton_calls["chunk_attention_triton"] > 0
    bf16_err = (torch_out - exact).abs().max().item()
    assert bf16_err < 0.1 * exact.abs().max().item()          # bf16 is bf16, not garbage
    assert (triton_out - exact).abs().max().item() <= 2 * bf16_err
    assert (triton_out - torch_out).abs().max().item() <= 2 * bf16_err
