"""3D rotary position embedding over (time, y, x).

The head dimension D is split as rotate-half pairs (i, i + D/2), i < D/2. The first
D/8 pairs rotate with time, the next (D/2 - D/8)/2 with y, the rest with x; each axis
has its own geometric frequency ladder, theta ** (-k / n_axis). D must be a multiple
of 16 (32, 64 and 128 are the supported head dims).
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
    """pos (..., L, 3) -> angles (..., L, D/2), fp32."""
    inv_freq, axis = rope_frequencies(head_dim, pos.device)
    return pos.float()[..., axis] * inv_freq


def apply_rope_ref(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Rotate x (..., L, D) by positions pos broadcastable to (..., L, 3). fp32 math."""
    D = x.shape[-1]
    ang = rope_angles(pos, D)                                   # (..., L, D/2)
    cos, sin = ang.cos(), ang.sin()
    xf = x.float()
    x1, x2 = xf[..., : D // 2], xf[..., D // 2 :]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).to(x.dtype)


def rope_tables(head_dim: int, n_pos: int,
                device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor,
                                                               torch.Tensor]:
    """cos, sin (n_pos, D/2) fp32 for integer positions 0..n_pos-1, and axis (D/2,)
    int32: pair i at integer position p on axis[i] rotates by cos/sin[p, i]. Same
    fp32 angles as `rope_angles` (the kernels gather from these tables)."""
    inv_freq, axis = rope_frequencies(head_dim, device)
    ang = torch.arange(n_pos, device=device).float()[:, None] * inv_freq     # (P, D/2)
    return ang.cos().contiguous(), ang.sin().contiguous(), axis.to(torch.int32)
