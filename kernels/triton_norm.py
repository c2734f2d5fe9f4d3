"""Triton LayerNorm / RMSNorm fused with adaLN modulation, one pass over x.

Each program normalises BLOCK_R token rows of width C held whole in registers:
load x once, reduce mean / mean-square in fp32, then scale by (1 + scale) and add
shift of the row's group (token l uses group l // (L // G), kernels/norm.py), and
store once. Memory traffic is one read and one write of x plus the (small,
cache-resident) shift/scale rows: a copy's worth. When BLOCK_R divides the group
length (the model's case: a group is a frame's tokens) every row of a program shares
one group, and shift/scale are loaded once per program as one row each instead of
once per row (which tripled the loads the first H200 run measured: 60% of copy
bandwidth). Compiled code autotunes BLOCK_R and the warp count per width.
"""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl

from kernels._dispatch import autotuning, interpreter_env, interpreting
from kernels.norm import NormKind
from kernels.triton_common import round_to

INTERPRETED = interpreting()    # this copy's kernels run under Triton's interpreter


@triton.jit
def _adaln_norm_fwd(
    X, SHIFT, SCALE, O,
    sxb, sxl, shb, shg, scb, scg,
    n_rows, L, per_group, C, eps,
    RMS: tl.constexpr, INTERP: tl.constexpr, UNIFORM: tl.constexpr,
    BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr,
):
    row0 = tl.program_id(0) * BLOCK_R
    rows = row0 + tl.arange(0, BLOCK_R)
    cols = tl.arange(0, BLOCK_C)
    r_mask = rows < n_rows
    c_mask = cols < C
    mask = r_mask[:, None] & c_mask[None, :]
    b = (rows // L).to(tl.int64)
    l_idx = rows % L

    x = tl.load(X + (b * sxb + l_idx.to(tl.int64) * sxl)[:, None] + cols[None, :], mask=mask,
                other=0.0).to(tl.float32)
    if not RMS:
        mean = tl.sum(x, 1) / C
        x = tl.where(mask, x - mean[:, None], 0.0)
    rstd = 1.0 / tl.sqrt(tl.sum(x * x, 1) / C + eps)
    if UNIFORM:     # every row of this program is in one (session, group): one row each
        b0 = (row0 // L).to(tl.int64)
        g0 = ((row0 % L) // per_group).to(tl.int64)
        shift = tl.load(SHIFT + b0 * shb + g0 * shg + cols, mask=c_mask, other=0.0)
        scale = tl.load(SCALE + b0 * scb + g0 * scg + cols, mask=c_mask, other=0.0)
        y = x * rstd[:, None] * (1.0 + scale.to(tl.float32)[None, :]) \
            + shift.to(tl.float32)[None, :]
    else:
        g = (l_idx // per_group).to(tl.int64)
        shift = tl.load(SHIFT + (b * shb + g * shg)[:, None] + cols[None, :], mask=mask,
                        other=0.0).to(tl.float32)
        scale = tl.load(SCALE + (b * scb + g * scg)[:, None] + cols[None, :], mask=mask,
                        other=0.0).to(tl.float32)
        y = x * rstd[:, None] * (1.0 + scale) + shift
    tl.store(O + rows.to(tl.int64)[:, None] * C + cols[None, :],
             round_to(y, O.dtype.element_ty, INTERP), mask=mask)


def _tiles(C: int) -> tuple[int, int, int]:
    """(BLOCK_R, BLOCK_C, num_warps) without tuning: whole rows, ~4K elements."""
    block_c = triton.next_power_of_2(C)
    block_r = max(1, min(32, 4096 // block_c))
    warps = 4 if block_r * block_c <= 4096 else 8
    return block_r, block_c, warps


def _configs() -> list[triton.Config]:
    return [triton.Config({"BLOCK_R": r}, num_warps=w) for r in (1, 2, 4, 8, 16)
            for w in (2, 4, 8)]


def _prune(configs: list[triton.Config], named_args: dict, **kwargs: object
           ) -> list[triton.Config]:
    """Keep tiles of 1K-16K elements (registers hold the whole tile in fp32)."""
    block_c = kwargs.get("BLOCK_C") or named_args.get("BLOCK_C")
    assert isinstance(block_c, int)
    kept = [c for c in configs if 1024 <= c.kwargs["BLOCK_R"] * block_c <= 16384]
    return kept or configs[:1]


if INTERPRETED:
    _launch = _adaln_norm_fwd
else:
    _launch = triton.autotune(
        configs=_configs(), key=["C", "n_rows", "per_group", "RMS"],
        prune_configs_by={"early_config_prune": _prune},
    )(triton.heuristics({"UNIFORM": lambda a: a["per_group"] % a["BLOCK_R"] == 0})(
        _adaln_norm_fwd))


def _rows_contiguous(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


def adaln_norm_triton(
    x: torch.Tensor,            # (B, L, C)
    shift: torch.Tensor,        # (B, G, C), L % G == 0
    scale: torch.Tensor,        # (B, G, C)
    kind: NormKind = "layer",
    eps: float = 1e-6,
    out: torch.Tensor | None = None,    # (B, L, C) contiguous, x's dtype
) -> torch.Tensor:              # (B, L, C), x's dtype
    """Same semantics as `kernels.norm.adaln_norm_ref`; `out` (optional) receives it."""
    B, L, C = x.shape
    G = shift.shape[1]
    if L % G or shift.shape != (B, G, C) or scale.shape != (B, G, C):
        raise ValueError(f"x {tuple(x.shape)} with shift {tuple(shift.shape)} / scale "
                         f"{tuple(scale.shape)}: need (B, G, C) with L % G == 0")
    if kind not in ("layer", "rms"):
        raise ValueError(f"kind must be 'layer' or 'rms', got {kind!r}")
    x, shift, scale = (_rows_contiguous(t) for t in (x, shift, scale))
    if out is None:
        out = torch.empty((B, L, C), dtype=x.dtype, device=x.device)
    assert out.is_contiguous() and out.shape == x.shape and out.dtype == x.dtype
    args = (x, shift, scale, out, x.stride(0), x.stride(1), shift.stride(0), shift.stride(1),
            scale.stride(0), scale.stride(1), B * L, L, L // G, C, eps)
    if INTERPRETED or not autotuning():
        block_r, block_c, warps = _tiles(C)
        with interpreter_env() if INTERPRETED else contextlib.nullcontext():
            _adaln_norm_fwd[(triton.cdiv(B * L, block_r),)](
                *args, RMS=kind == "rms", INTERP=INTERPRETED,
                UNIFORM=(L // G) % block_r == 0, BLOCK_R=block_r, BLOCK_C=block_c,
                num_warps=warps)
    else:
        def grid(meta: dict) -> tuple[int]:
            return (triton.cdiv(B * L, meta["BLOCK_R"]),)

        _launch[grid](*args, RMS=kind == "rms", INTERP=False,
                      BLOCK_C=triton.next_power_of_2(C))
    return out
