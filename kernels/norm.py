"""LayerNorm / RMSNorm fused with adaLN modulation: norm(x) * (1 + scale) + shift.

Modulation is per group of consecutive tokens (one group per frame: each frame of a
chunk has its own flow time and face features), so shift and scale are (B, G, C) and
token l uses group l // (L // G). The norm has no learned affine: adaLN supplies it.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from kernels._dispatch import backend_for, kernel_module

NormKind = Literal["layer", "rms"]


def adaln_norm_ref(
    x: torch.Tensor,            # (B, L, C)
    shift: torch.Tensor,        # (B, G, C), L % G == 0
    scale: torch.Tensor,        # (B, G, C)
    kind: NormKind = "layer",
    eps: float = 1e-6,
) -> torch.Tensor:              # (B, L, C), x's dtype
    B, L, C = x.shape
    G = shift.shape[1]
    xf = x.float().view(B, G, L // G, C)
    if kind == "layer":
        xf = xf - xf.mean(dim=-1, keepdim=True)
    xf = xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + eps)
    out = xf * (1 + scale.float()[:, :, None]) + shift.float()[:, :, None]
    return out.view(B, L, C).to(x.dtype)


def adaln_norm_torch(
    x: torch.Tensor,            # (B, L, C)
    shift: torch.Tensor,        # (B, G, C), L % G == 0
    scale: torch.Tensor,        # (B, G, C)
    kind: NormKind = "layer",
    eps: float = 1e-6,
) -> torch.Tensor:              # (B, L, C), x's dtype
    """The entry point's PyTorch path: fp32 like the reference, but through the
    fused `layer_norm` / `rms_norm` and one `addcmul` (~2x faster on CPU)."""
    B, L, C = x.shape
    G = shift.shape[1]
    xf = x.float()
    if kind == "layer":
        n = F.layer_norm(xf, (C,), eps=eps)
    else:
        n = F.rms_norm(xf, (C,), eps=eps)
    out = torch.addcmul(shift.float()[:, :, None], n.view(B, G, L // G, C),
                        1 + scale.float()[:, :, None])
    return out.view(B, L, C).to(x.dtype)


def adaln_norm(
    x: torch.Tensor,
    shift: torch.Tensor,
    scale: torch.Tensor,
    kind: NormKind = "layer",
    eps: float = 1e-6,
) -> torch.Tensor:
    """Dispatching entry point; same arguments as `adaln_norm_ref`."""
    if backend_for(x, shift, scale) == "triton":
        mod = kernel_module("kernels.triton_norm", x.device)
        return mod.adaln_norm_triton(x, shift, scale, kind, eps)
    return adaln_norm_torch(x, shift, scale, kind, eps)
