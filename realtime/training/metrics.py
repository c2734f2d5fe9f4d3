"""Image and video quality metrics for evaluation (pure torch, CPU friendly).

All functions take frames as float tensors in [0, 1], shaped (N, 3, H, W).

- `psnr`: per-frame PSNR averaged over frames (dB; identical frames are capped at
  `MAX_DB` so a mean stays finite).
- `ssim`: the standard Gaussian-window SSIM of Wang et al. 2004 (11x11, sigma 1.5,
  K1 = 0.01, K2 = 0.03), on each RGB channel, averaged.
- `region_psnr`: PSNR inside per-frame boxes (face, hands), boxes found from the
  condition's pose maps, so the region follows the driving motion.
- `flicker`: how far the output's frame-to-frame change departs from the ground
  truth's: mean |(out_t - out_{t-1}) - (gt_t - gt_{t-1})|, plus the ratio of the two
  mean temporal changes (1 = as lively as the ground truth, > 1 = flickers).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from realtime.motion.types import POSE_CHANNELS

MAX_DB = 100.0
Box = tuple[int, int, int, int]             # (y0, y1, x0, x1), half-open pixel rows/cols

DRAWN = 0.2                                 # a pose-map pixel above this is drawn
FACE_CHANNELS = (POSE_CHANNELS.index("head"),)
HAND_CHANNELS = tuple(i for i, n in enumerate(POSE_CHANNELS) if n.endswith(("_l", "_r"))
                      and not n.startswith(("arm", "leg")))


def _db(mse: float) -> float:
    return MAX_DB if mse <= 1e-10 else min(MAX_DB, -10.0 * math.log10(mse))


def psnr(pred: torch.Tensor, gt: torch.Tensor) -> float:
    """Mean over frames of per-frame PSNR, dB. pred, gt (N, 3, H, W) in [0, 1]."""
    mse = (pred.float() - gt.float()).pow(2).flatten(1).mean(1)            # (N,)
    return float(sum(_db(float(m)) for m in mse) / len(mse))


def _gauss(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]                          # (1, 1, s, s)


def ssim(pred: torch.Tensor, gt: torch.Tensor) -> float:
    """Mean SSIM over frames and channels. pred, gt (N, 3, H, W) in [0, 1]."""
    N, C, H, W = pred.shape
    size = min(11, H, W) | 1                # odd window no larger than the frame
    w = _gauss(size).to(pred.device)
    x = pred.float().reshape(N * C, 1, H, W)
    y = gt.float().reshape(N * C, 1, H, W)
    mu_x, mu_y = F.conv2d(x, w), F.conv2d(y, w)
    sxx = F.conv2d(x * x, w) - mu_x**2
    syy = F.conv2d(y * y, w) - mu_y**2
    sxy = F.conv2d(x * y, w) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return float(s.mean())


def boxes_from_maps(
    pose_maps: torch.Tensor,                # (N, 16, h, w) condition maps in [0, 1]
    channels: tuple[int, ...],
    out_size: int,
    margin: float = 0.25,
    threshold: float = DRAWN,
) -> list[Box | None]:
    """Per-frame bounding box of the strokes in `channels`, grown by `margin` of its
    size (at least 2 output pixels), scaled to an `out_size` frame. None where the
    part is not drawn (absent or off-canvas)."""
    h, w = pose_maps.shape[-2:]
    on = pose_maps[:, list(channels)].amax(dim=1) > threshold             # (N, h, w)
    boxes: list[Box | None] = []
    for m in on:
        ys, xs = torch.nonzero(m, as_tuple=True)
        if len(ys) == 0:
            boxes.append(None)
            continue
        sy, sx = out_size / h, out_size / w
        y0, y1 = float(ys.min()) * sy, (float(ys.max()) + 1) * sy
        x0, x1 = float(xs.min()) * sx, (float(xs.max()) + 1) * sx
        my = max(2.0, margin * (y1 - y0))
        mx = max(2.0, margin * (x1 - x0))
        boxes.append((max(0, int(y0 - my)), min(out_size, int(math.ceil(y1 + my))),
                      max(0, int(x0 - mx)), min(out_size, int(math.ceil(x1 + mx)))))
    return boxes


def region_psnr(pred: torch.Tensor, gt: torch.Tensor, boxes: list[Box | None]) -> float:
    """PSNR over the pixels inside each frame's box (frames without a box skipped);
    NaN when no frame has one."""
    sq, count = 0.0, 0
    for i, b in enumerate(boxes):
        if b is None:
            continue
        y0, y1, x0, x1 = b
        d = (pred[i, :, y0:y1, x0:x1].float() - gt[i, :, y0:y1, x0:x1].float()).pow(2)
        sq += float(d.sum())
        count += d.numel()
    return float("nan") if count == 0 else _db(sq / count)


def masked_psnr(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor) -> float:
    """PSNR over the pixels where `mask` (N, H, W) bool is set, all frames together;
    NaN when it is set nowhere."""
    m = mask[:, None].expand_as(gt)
    count = int(m.sum())
    if count == 0:
        return float("nan")
    return _db(float((pred.float() - gt.float()).pow(2)[m].sum()) / count)


def flicker(pred: torch.Tensor, gt: torch.Tensor) -> tuple[float, float]:
    """(mean |d_out - d_gt|, mean |d_out| / mean |d_gt|) over consecutive frames,
    d = x_t - x_{t-1}. pred, gt (N, 3, H, W), N >= 2."""
    d_out = pred[1:].float() - pred[:-1].float()
    d_gt = gt[1:].float() - gt[:-1].float()
    err = float((d_out - d_gt).abs().mean())
    ratio = float(d_out.abs().mean() / d_gt.abs().mean().clamp(min=1e-6))
    return err, ratio
