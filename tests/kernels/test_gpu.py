"""The compiled kernels on a CUDA device (autotuned tiles), same pass rule as the
interpreter tests. Skipped without a GPU; run them on the GPU machine with
`PYTHONPATH=. python -m pytest tests/kernels/test_gpu.py -q`."""

from __future__ import annotations

import pytest
import torch

from kernels.attention import chunk_attention, chunk_attention_ref
from kernels.layout import CacheLayout
from kernels.norm import adaln_norm, adaln_norm_ref
from tests.kernels.kernel_cases import assert_within_rule, max_err, sdpa_lowp, sessions

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.fixture(autouse=True)
def _fixed_tiles(monkeypatch: pytest.MonkeyPatch) -> None:
    """One tile config per kernel variant: correctness, not speed (the autotuned
    configs are timed, and checked against the reference, by bench/kernels.py)."""
    monkeypatch.setenv("MARIONETTE_AUTOTUNE", "0")

LAYOUTS = {
    "gpu-preset": CacheLayout(sink_frames=2, window=12, chunk=4, grid=(16, 16)),
    "odd": CacheLayout(sink_frames=1, window=5, chunk=3, grid=(7, 9)),
}


@pytest.mark.parametrize("wrap", [False, True], ids=["nowrap", "wrap"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("D", (32, 64, 128))
@pytest.mark.parametrize("dtype", (torch.float32, torch.bfloat16, torch.float16), ids=str)
def test_attention_on_gpu(dtype: torch.dtype, D: int, layout: str, wrap: bool) -> None:
    lay = LAYOUTS[layout]
    g = torch.Generator(device="cuda").manual_seed(0)
    B, H, Lq, S = 3, 2, lay.chunk_tokens, lay.capacity

    def rnd(*s: int) -> torch.Tensor:
        return torch.randn(*s, generator=g, device="cuda").to(dtype)

    q, k, v, kc, vc = rnd(B, H, Lq, D), rnd(B, H, Lq, D), rnd(B, H, Lq, D), rnd(B, H, S, D), \
        rnd(B, H, S, D)
    sink_len, ring_start, window_len, frame_pos = sessions(lay, wrap)
    state = sink_len.cuda(), ring_start.cuda(), window_len.cuda(), frame_pos.cuda()
    ref = chunk_attention_ref(q.float(), k.float(), v.float(), kc.float(), vc.float(), *state,
                              lay)
    # NaN in every invalid slot: the kernel must never read them
    _, window_valid = lay.cache_positions(state[1], state[2])  # sessions(): 4 tensors
    valid = window_valid | (torch.arange(S, device="cuda")[None] < state[0][:, None].long())
    hole = ~valid[:, None, :, None]
    out = chunk_attention(q, k, v, kc.masked_fill(hole, float("nan")),
                          vc.masked_fill(hole, float("nan")), *state, lay)
    assert_within_rule(out, ref, sdpa_lowp(q, k, v, kc, vc, *state, lay),
                       f"gpu {dtype} D={D} {layout}")


@pytest.mark.parametrize("kind", ["layer", "rms"])
@pytest.mark.parametrize("dtype", (torch.float32, torch.bfloat16), ids=str)
def test_norm_on_gpu(dtype: torch.dtype, kind: str) -> None:
    g = torch.Generator(device="cuda").manual_seed(0)
    B, L, C, G = 2, 4 * 256, 768, 4
    x = (torch.randn(B, L, C, generator=g, device="cuda") * 3 + 2).to(dtype)
    shift, scale = torch.randn(B, G, 2 * C, generator=g, device="cuda").to(dtype).chunk(2, -1)
    ref = adaln_norm_ref(x.float(), shift.float(), scale.float(), kind)  # type: ignore[arg-type]
    out = adaln_norm(x, shift, scale, kind)  # type: ignore[arg-type]
    base = adaln_norm_ref(x, shift, scale, kind)  # type: ignore[arg-type]
    assert torch.isfinite(out).all()
    assert max_err(out, ref) <= 2 * max_err(base, ref) + (1e-5 if dtype == torch.float32
                                                           else 1e-6)
