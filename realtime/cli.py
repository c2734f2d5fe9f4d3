"""Marionette: real-time streaming character animation.

Each subcommand lives beside the code it drives and exposes `add_arguments(parser)`
and `run(args) -> int`. It is imported only when chosen, so `marionette --help`
starts instantly and the GPU machine (no MediaPipe) can run the subcommands that
do not need it."""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("streaming.server", "WebRTC server: webcam in, animated character out"),
    "client": ("clients.pyclient", "stream a file or synthetic source to a server"),
    "animate": ("realtime.animate", "animate a reference image with a driving video, offline"),
    "motion": ("realtime.motion.cli", "extract motion from a video (overlay, track, stats)"),
    "avatar": ("realtime.avatars.cli", "built-in characters and the synthetic dataset"),
    "train": ("realtime.training.cli", "train the autoencoder, teacher and student"),
    "eval": ("realtime.training.evaluate", "evaluate a checkpoint on held-out data"),
    "bench": ("bench.cli", "benchmarks: latency, model, kernels"),
}


def build_parser(argv: list[str]) -> tuple[argparse.ArgumentParser, argparse.Namespace | None]:
    parser = argparse.ArgumentParser(prog="marionette", description=(__doc__ or "").split("\n")[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = argv[0] if argv and argv[0] in COMMANDS else None
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            importlib.import_module(module).add_arguments(p)
    return parser, None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, _ = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(COMMANDS[args.command][0])
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
