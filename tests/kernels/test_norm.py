"""Fused adaLN norm: the Triton kernel (under the interpreter) against the fp32
reference, LayerNorm and RMSNorm, over dtype x width x groups."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kernels._dispatch import kernel_module
from kernels.norm import NormKind, adaln_norm_ref, adaln_norm_torch
from tests.kernels.kernel_cases import DTYPES, assert_within_rule

# (B, L, C, G): odd token counts, widths that are not powers of two, one group per
# frame of a chunk or a single group; the last has groups a whole number of row
# blocks long (the model's case: the kernel loads shift/scale once per program)
SHAPES = [(2, 15, 96, 3), (3, 7, 200, 1), (1, 33, 64, 11), (2, 128, 96, 2)]


def torch_lowp(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, kind: NormKind
               ) -> torch.Tensor:
    """The same op as a PyTorch user writes it at x's precision."""
    B, L, C = x.shape
    G = shift.shape[1]
    n = F.layer_norm(x, (C,), eps=1e-6) if kind == "layer" else F.rms_norm(x, (C,), eps=1e-6)
    return (n.view(B, G, L // G, C) * (1 + scale[:, :, None]) + shift[:, :, None]).view(B, L, C)


def triton_norm():  # the interpreted kernel module (CPU tensors)
    return kernel_module("kernels.triton_norm", torch.device("cpu"))


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("kind", ["layer", "rms"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_triton_matches_reference(dtype: torch.dtype, kind: NormKind,
                                  shape: tuple[int, int, int, int],
                                  gen: torch.Generator) -> None:
    B, L, C, G = shape
    # an offset and spread so LayerNorm's mean subtraction matters
    x = (torch.randn(B, L, C, generator=gen) * 3 + 2).to(dtype)
    mod = torch.randn(B, G, 2 * C, generator=gen).to(dtype)
    shift, scale = mod.chunk(2, dim=-1)                  # strided views, as adaLN makes them
    ref = adaln_norm_ref(x.float(), shift.float(), scale.float(), kind)
    out = torch.full_like(x, float("nan"))               # poisoned
    triton_norm().adaln_norm_triton(x, shift, scale, kind, 1e-6, out=out)
    assert_within_rule(out, ref, torch_lowp(x, shift, scale, kind), f"norm {dtype} {kind}")


@pytest.mark.parametrize("kind", ["layer", "rms"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_torch_path_matches_reference(dtype: torch.dtype, kind: NormKind,
                                      gen: torch.Generator) -> None:
    for B, L, C, G in SHAPES:
        x = (torch.randn(B, L, C, generator=gen) * 3 + 2).to(dtype)
        shift, scale = torch.randn(B, G, 2 * C, generator=gen).to(dtype).chunk(2, dim=-1)
        ref = adaln_norm_ref(x.float(), shift.float(), scale.float(), kind)
        assert_within_rule(adaln_norm_torch(x, shift, scale, kind), ref,
                           torch_lowp(x, shift, scale, kind), f"torch norm {dtype} {kind}")


def test_rejects_bad_groups(gen: torch.Generator) -> None:
    x = torch.randn(1, 10, 32, generator=gen)
    s = torch.randn(1, 3, 32, generator=gen)
    with pytest.raises(ValueError, match="L % G"):
        triton_norm().adaln_norm_triton(x, s, s)
