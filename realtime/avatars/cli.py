"""`marionette avatar`: the built-in characters and the synthetic dataset.

    marionette avatar list
    marionette avatar render --name NAME --out IMG [--pose rest|random --seed S]
                             [--size N] [--background B] [--framing F]
    marionette avatar dataset --out DIR --characters N --clips M --resolution R
                              [--seed S] [--frames F] [--tracks DIR] [--workers W]
                              [--framings F [F ...]] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

# render.FRAMINGS, spelled out so that parsing the command line does not import skia
FRAMINGS = ("full", "upper", "face")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="avatar_command", metavar="ACTION", required=True)
    sub.add_parser("list", help="the built-in character names, one a line")
    r = sub.add_parser("render", help="render a built-in character to an image")
    r.add_argument("--name", required=True, help="a name from `marionette avatar list`")
    r.add_argument("--out", required=True, type=Path, help="image file (.png, .jpg)")
    r.add_argument("--pose", choices=("rest", "random"), default="rest")
    r.add_argument("--seed", type=int, default=0, help="picks the random pose")
    r.add_argument("--size", type=int, default=256)
    r.add_argument("--background", default="plain",
                   choices=("plain", "gradient", "textured", "transparent", "chroma"))
    r.add_argument("--framing", default="full", choices=FRAMINGS)
    d = sub.add_parser("dataset", help="render the synthetic training set")
    d.add_argument("--out", required=True, type=Path)
    d.add_argument("--characters", type=int, default=32)
    d.add_argument("--clips", type=int, default=64)
    d.add_argument("--resolution", type=int, default=128)
    d.add_argument("--frames", type=int, default=16, help="frames per clip")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--clips-per-shard", type=int, default=8)
    d.add_argument("--performers", type=int, default=12, help="procedural motion sources")
    d.add_argument("--tracks", type=Path, default=None,
                   help="folder of .npz tracks from `marionette motion --track` to add")
    d.add_argument("--workers", type=int, default=1, help="render shards in N processes")
    d.add_argument("--framings", nargs="+", choices=FRAMINGS, default=None,
                   help="the cameras a clip is drawn through, one picked per clip (default: "
                        "full, upper, upper, face; `face` alone: head-and-shoulders portraits)")
    d.add_argument("--json", action="store_true", help="print a JSON summary at the end")


def run(args: argparse.Namespace) -> int:
    if args.avatar_command == "list":
        from realtime.avatars import gallery

        print("\n".join(gallery.names()))
        return 0
    if args.avatar_command == "render":
        return _render(args)
    return _dataset(args)


def _render(args: argparse.Namespace) -> int:
    from PIL import Image

    from realtime.avatars import gallery
    from realtime.avatars.motion import ProceduralMotion, to_pose
    from realtime.avatars.render import render, rest_pose

    try:
        character = gallery.get(args.name)
    except KeyError as e:
        print(e.args[0], file=sys.stderr)
        return 2
    if args.pose == "rest":
        pose = rest_pose(character)
    else:
        import numpy as np

        frame = int(np.random.default_rng(args.seed).integers(30 * 60))   # within 1 min
        pose = to_pose(ProceduralMotion(args.seed).frame(frame), character.skeleton)
    rgba = render(character, pose, args.size, args.background, args.framing)
    mode = "RGBA" if args.background in ("transparent", "chroma") else "RGB"
    image = Image.fromarray(rgba if mode == "RGBA" else rgba[..., :3], mode)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if mode == "RGBA" and args.out.suffix.lower() in (".jpg", ".jpeg"):
        print("JPEG has no alpha: use .png for transparent or chroma output", file=sys.stderr)
        return 2
    image.save(args.out)
    return 0


def _dataset(args: argparse.Namespace) -> int:
    from realtime.avatars.dataset import DatasetConfig, build

    for name in ("characters", "clips", "resolution", "frames", "clips_per_shard", "performers",
                 "workers"):
        if getattr(args, name) < 1:
            print(f"--{name.replace('_', '-')} must be at least 1", file=sys.stderr)
            return 2
    if args.tracks is not None and not args.tracks.is_dir():
        print(f"--tracks {args.tracks} is not a folder", file=sys.stderr)
        return 2
    config = DatasetConfig(characters=args.characters, clips=args.clips,
                           resolution=args.resolution, frames=args.frames, seed=args.seed,
                           clips_per_shard=args.clips_per_shard, performers=args.performers)
    if args.framings is not None:
        config = dataclasses.replace(config, framings=tuple(args.framings))
    try:
        index = build(config, args.out, args.tracks, workers=args.workers)
    except ValueError as e:
        print(str(e), file=sys.stderr)
        return 2
    counts: dict[str, int] = {}
    for shard in index["shards"]:
        counts[shard["split"]] = counts.get(shard["split"], 0) + shard["samples"]
    summary = {"out": str(args.out), "shards": len(index["shards"]), "samples": counts}
    print(json.dumps(summary) if args.json else
          f"wrote {sum(counts.values())} clips in {len(index['shards'])} shards to {args.out}: "
          + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0
