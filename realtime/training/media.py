"""Real photographs and video frames for the autoencoder (../shared/media).

The studio's characters are drawn, so an autoencoder trained on them alone has never
seen skin, hair or a photographed room; a user's uploaded reference photo would come
out as mush. This module decodes frames from the real driving clips (PyAV) and the
source images, centre-crops them square and area-resizes them to the model's
resolution. Clips and images are split by file (every `holdout_every`-th file is
held out), so held-out PSNR is measured on footage the autoencoder never saw.

Nothing is copied into the repository: the files are read where they lie.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

SHARED_MEDIA = Path(__file__).resolve().parents[3] / "shared" / "media"


def _square(img: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop (H, W, 3) uint8 to a square, area-resize to (size, size, 3)."""
    h, w = img.shape[:2]
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    x = torch.from_numpy(np.array(img[y0:y0 + s, x0:x0 + s])).permute(2, 0, 1)
    x = F.interpolate(x[None].float(), size=(size, size), mode="area")[0]
    return x.round().clamp(0, 255).byte().permute(1, 2, 0).numpy()


def video_frames(path: Path, size: int, count: int) -> list[np.ndarray]:
    """Up to `count` frames spread evenly over a video, squared to `size`."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        total = stream.frames
        if not total and stream.duration and stream.time_base and stream.average_rate:
            total = int(stream.duration * stream.time_base * stream.average_rate)
        total = total or 300
        keep = set(np.linspace(0, total - 1, count).round().astype(int).tolist())
        frames = []
        for i, f in enumerate(container.decode(stream)):
            if i in keep:
                frames.append(f.to_ndarray(format="rgb24"))
            if i >= total:
                break
    return [_square(f, size) for f in frames]


def still_image(path: Path, size: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return _square(np.asarray(im.convert("RGB")), size)


def real_images(
    size: int, per_clip: int = 48, holdout_every: int = 5, root: Path | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, held_out) uint8 (N, 3, size, size) from ../shared/media; both empty
    (with a log line) when the media is absent."""
    root = root or SHARED_MEDIA
    manifest = root / "MANIFEST.tsv"
    empty = torch.zeros(0, 3, size, size, dtype=torch.uint8)
    if not manifest.is_file():
        log.warning("no real media at %s: training the autoencoder on studio frames only",
                    root)
        return empty, empty
    with manifest.open() as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    train: list[np.ndarray] = []
    held: list[np.ndarray] = []
    for i, row in enumerate(rows):
        path = root / row["file"]
        if not path.is_file():
            continue
        if row["file"].startswith("driving/"):
            imgs = video_frames(path, size, per_clip)
        else:
            # a still gives one frame; mirrored and shifted copies add a little variety
            img = still_image(path, size)
            imgs = [img, img[:, ::-1].copy()]
        (held if i % holdout_every == holdout_every - 1 else train).extend(imgs)

    def stack(xs: list[np.ndarray]) -> torch.Tensor:
        if not xs:
            return empty
        return torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).contiguous()

    return stack(train), stack(held)
