"""`marionette train init | ae | teacher | student`.

`init` writes a random-init checkpoint of a preset (what tests and benchmarks use
before trained weights exist). The training stages (`ae`, `teacher`, `student`)
register their own subparsers in `STAGES` beside it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

# name -> (help, add_arguments, run); the training stages add theirs here.
Stage = tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]


def _add_init(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", required=True, help="tiny | cpu | gpu")
    p.add_argument("--out", required=True, help="checkpoint directory to create")
    p.add_argument("--seed", type=int, default=0)


def _run_init(args: argparse.Namespace) -> int:
    from realtime.model.checkpoint import init_checkpoint
    from realtime.model.config import PRESETS

    if args.preset not in PRESETS:
        print(f"marionette train init: unknown preset {args.preset!r} "
              f"(choose from {', '.join(PRESETS)})", file=sys.stderr)
        return 2
    out = init_checkpoint(args.preset, args.out, seed=args.seed)
    print(f"wrote random-init {args.preset} checkpoint to {out}")
    return 0


STAGES: dict[str, Stage] = {
    "init": ("write a random-init checkpoint of a preset", _add_init, _run_init),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="stage", metavar="STAGE", required=True)
    for name, (help_text, add, _) in STAGES.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add(p)


def run(args: argparse.Namespace) -> int:
    return STAGES[args.stage][2](args)
