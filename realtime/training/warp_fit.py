"""`marionette train warp --data DS --checkpoint CKPT`: fit the face warp's gains.

The face warp (`realtime.model.face_warp`) has a handful of settings: how far a unit
of each face feature moves the pixels, and how wide each feature's window is. They
are fitted on the ground truth alone, no model involved: new clips of the dataset's
training characters are rendered twice, once as driven and once with the expression
held at the first frame (`evaluate.hold_expression_only`), and the settings are those
under which warping the held twin from its expression to the clip's comes closest to
the clip in the face boxes (coordinate search, each setting scaled by a few factors
in turn, kept when the face error falls). They are then measured the same way on the
dataset's unseen characters, which the fit never saw, and written into CKPT's
config.json (`face_warp`), from where every command that loads CKPT draws with them.

Seconds to minutes on a CPU: a few hundred warps of a few hundred frames.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from realtime.model.face_warp import FaceWarpConfig, warp_faces
from realtime.training.data import Clip

# each round scales every setting by these factors in turn (0: the feature's warp off)
FACTORS = (0.5, 0.75, 1.33, 2.0, 0.0)
# window sizes cannot be zero
WINDOWS = ("eye_across", "eye_along", "mouth_across", "chin")


@dataclasses.dataclass
class Pairs:
    clips: list[Clip]               # as driven
    held: list[Clip]                # the same clips with the expression held


def draw_pairs(data: Path, cfg: Any, kind: str, n: int, frames: int) -> Pairs:
    """`n` new clips of the dataset's `kind` (`studio.HELD_KINDS`) and their held twins."""
    from realtime.training.evaluate import hold_expression_only
    from realtime.training.studio import heldout_clips

    return Pairs(heldout_clips(data, cfg, n, frames, None, kind),
                 heldout_clips(data, cfg, n, frames, hold_expression_only, kind))


def warped(pairs: Pairs, warp: FaceWarpConfig) -> list[np.ndarray]:
    """Each held twin warped from its expression to its clip's, uint8 (F, H, W, 3)."""
    out = []
    for clip, held in zip(pairs.clips, pairs.held, strict=True):
        if clip.face_points is None:
            raise ValueError(f"clip {clip.character}/{clip.motion} has no face points")
        x = torch.from_numpy(held.frames).permute(0, 3, 1, 2).float() / 255.0
        y = warp_faces(x, torch.from_numpy(held.face_points), torch.from_numpy(held.face),
                       torch.from_numpy(clip.face), warp,
                       torch.from_numpy(np.asarray(held.pose, np.float32)))
        out.append((y.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy())
    return out


def score(pairs: Pairs, warp: FaceWarpConfig) -> dict[str, float]:
    """How close the warped twins come to the truth in the face boxes: `face_gain_db`
    (the held twin's face error over the warped twin's, dB; > 0 closer), and the
    response of the warp to the expression (`evaluate.response`: gain and cosine)."""
    from realtime.training.evaluate import response
    from realtime.training.metrics import FACE_CHANNELS, boxes_from_maps

    outs = warped(pairs, warp)
    err_warp = err_held = 0.0
    for out, clip, held in zip(outs, pairs.clips, pairs.held, strict=True):
        boxes = boxes_from_maps(torch.from_numpy(np.asarray(clip.pose, np.float32)),
                                FACE_CHANNELS, out.shape[1])
        for t, box in enumerate(boxes):
            if box is None:
                continue
            y0, y1, x0, x1 = box
            truth = clip.frames[t, y0:y1, x0:x1].astype(np.float64)
            err_warp += float(((out[t, y0:y1, x0:x1] - truth) ** 2).sum())
            err_held += float(((held.frames[t, y0:y1, x0:x1] - truth) ** 2).sum())
    r = response(outs, [h.frames for h in pairs.held], pairs.clips, pairs.held, FACE_CHANNELS)
    gain_db = 10 * math.log10(err_held / err_warp) if err_warp > 0 and err_held > 0 else 0.0
    return {"face_gain_db": gain_db, "gain": r["gain"], "cos": r["cos"]}


def fit(pairs: Pairs, start: FaceWarpConfig, rounds: int,
        log: Any = None) -> tuple[FaceWarpConfig, dict[str, float]]:
    """Coordinate search from `start` for the settings with the highest `face_gain_db`."""
    best, best_score = start, score(pairs, start)
    for r in range(rounds):
        for field in dataclasses.fields(FaceWarpConfig):
            for factor in FACTORS:
                if factor == 0.0 and field.name in WINDOWS:
                    continue
                trial = dataclasses.replace(best, **{field.name: getattr(best, field.name)
                                                     * factor})
                s = score(pairs, trial)
                if s["face_gain_db"] > best_score["face_gain_db"] + 1e-4:
                    best, best_score = trial, s
        if log is not None:
            log({"round": r, **best_score, "warp": best.to_dict()})
    return best, best_score


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, required=True,
                   help="studio dataset (its training characters fit the warp, its unseen "
                        "ones measure it)")
    p.add_argument("--checkpoint", type=Path, required=True,
                   help="checkpoint whose config.json receives the fitted warp")
    p.add_argument("--clips", type=int, default=24, help="clips to fit on (default 24)")
    p.add_argument("--clip-frames", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3, help="coordinate-search rounds")
    p.add_argument("--json", type=Path, default=None, help="write the summary JSON here")


def run(args: argparse.Namespace) -> int:
    from realtime.model.checkpoint import read_config, write_face_warp

    cfg = read_config(args.checkpoint)
    t0 = time.monotonic()

    def log(row: dict[str, Any]) -> None:
        print(json.dumps(row), file=sys.stderr, flush=True)

    train = draw_pairs(args.data, cfg, "heldout_motion", args.clips, args.clip_frames)
    warp, fitted = fit(train, FaceWarpConfig(), args.rounds, log)
    unseen = draw_pairs(args.data, cfg, "heldout_character", args.clips, args.clip_frames)
    summary = {"data": str(args.data), "checkpoint": str(args.checkpoint),
               "clips": args.clips, "clip_frames": args.clip_frames, "rounds": args.rounds,
               "warp": warp.to_dict(), "training_characters": fitted,
               "unseen_characters": score(unseen, warp),
               "unseen_characters_unfitted": score(unseen, FaceWarpConfig()),
               "seconds": round(time.monotonic() - t0, 1)}
    write_face_warp(args.checkpoint, warp)
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    return 0
