"""`marionette bench latency | model | kernels`."""

from __future__ import annotations

import argparse
import importlib

BENCHES = {
    "latency": ("bench.latency", "glass-to-glass latency through a real WebRTC connection"),
    "model": ("bench.model", "DiT + decode per frame for a preset"),
    "kernels": ("bench.kernels", "Triton kernels against PyTorch on the model's shapes"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="BENCH", required=True)
    for name, (module, help_text) in BENCHES.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_bench_module=module)
        importlib.import_module(module).add_arguments(p)


def run(args: argparse.Namespace) -> int:
    return int(importlib.import_module(args._bench_module).run(args) or 0)
