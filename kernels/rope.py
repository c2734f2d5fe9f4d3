"""3D rotary position embedding over (time, y, x).

The head dimension D is split as rotate-half pairs (i, i + D/2), i < D/2. The first
D/8 pairs rotate with time, the next (D/2 - D/8)/2 with y, the rest with x; each axis
has its own geometric frequency ladder, theta ** (-k / n_axis). D must be a multiple
of 16 (32, 64 and 128 are the supported head dims).

Scores depend only on position differences, so the cache stores keys already
rotated, each at a fixed position (`kernels.layout`): nothing is re-rotated as the
window slides. The Triton kernel that rotates rows (and writes keys into their cache
slots) is `kernels.triton_rope`; `rope_rows` below is its dispatching entry point.
"""

from __future__ import annotations

import torch

THETA = 10000.0


def rope_frequencies(
    head_dim: int, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(inv_freq, axis), each (D/2,): pair i rotates by pos[axis[i]] * inv_freq[i]."""
    if head_dim % 16:
        raise ValueError(f"head_dim must be a multiple of 16, got {head_dim}")
    half = head_dim // 2
    n_t = head_dim // 8
    n_y = (half - n_t) // 2
    n_x = half - n_t - n_y
    freqs, axes = [], []
    for axis, n in enumerate((n_t, n_y, n_x)):
        freqs.append(THETA ** (-torch.arange(n, dtype=torch.float64, device=device) / n))
        axes.append(torch.full((n,), axis, dtype=torch.long, device=device))
    return torch.cat(freqs).float(), torch.cat(axes)


def rope_angles(pos: torch.Tensor, head_dim: int) -> torch.Tensor:
    """pos (..., L, 3) -> angles (..., L, D/2), float64: exact for the absolute frame
    positions of a long stream (frame 10^9 still gets its angle to ~1e-7 rad, where an
    fp32 product would be off by tens of radians)."""
    inv_freq, axis = rope_frequencies(head_dim, pos.device)
    return pos.double()[..., axis] * inv_freq.double()


def rope_cos_sin(pos: torch.Tensor, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin (..., L, D/2) fp32 of positions (..., L, 3), computed in float64."""
    ang = rope_angles(pos, head_dim)
    return ang.cos().float(), ang.sin().float()


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate-half RoPE of x (..., L, D) by cos/sin broadcastable to (..., L, D/2),
    in x's dtype (callers upcast when they want fp32 math)."""
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


def apply_rope_ref(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Rotate x (..., L, D) by positions pos broadcastable to (..., L, 3). fp32 math."""
    cos, sin = rope_cos_sin(pos, x.shape[-1])
    return rotate(x.float(), cos, sin).to(x.dtype)


def rope_rows(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
              out: torch.Tensor | None = None, slots: torch.Tensor | None = None
              ) -> torch.Tensor:
    """Rotate x (B, H, L, D) by cos/sin (B or 1, L, D/2) fp32, rounding to x's dtype
    once. With `out` (B, H, S, D) and `slots` (B, L) int: row l of session b is written
    to out[b, :, slots[b, l]] (a cache write) and `out` is returned; else a new tensor.
    Triton on CUDA (one fused pass), PyTorch on CPU (see kernels._dispatch)."""
    from kernels._dispatch import backend_for, kernel_module

    if backend_for(x, cos, sin) == "triton":
        return kernel_module("kernels.triton_rope", x.device).rope_rows_triton(
            x, cos, sin, out, slots)
    r = rotate(x.float(), cos[:, None], sin[:, None]).to(x.dtype if out is None else out.dtype)
    if out is None:
        return r
    if slots is None:
        raise ValueError("rope_rows: out needs slots")
    B, H, L, D = x.shape
    out.scatter_(2, slots.long()[:, None, :, None].expand(B, H, L, D), r)
    return out
