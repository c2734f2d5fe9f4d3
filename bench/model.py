"""`marionette bench model`: DiT + decode time per output frame for a preset.

What is timed: `StreamingEngine.push` of synthetic motion conditions, chunk after
chunk, against a full window (the steady state of a long stream), with the engine's
own stage stamps, then `StreamingEngine.settle` as a session calls it once the frames
have left: 'dit' = the chunk's denoising steps, 'decode' = the autoencoder decode of
the chunk, 'frame' = the two together (what a frame waits for), 'write' = the cache
write after it (the extra t=0 pass in 'clean' mode; off the frames' path), 'total' =
all three (the compute each frame costs), each divided by the K frames of the chunk.
Not timed: motion extraction, condition rendering, video encode (other benches).

Method: `--warmup` chunks first (allocator, oneDNN kernel selection, caches; the
window fills), then `--chunks` measured chunks; medians and p95 over chunks. On CUDA
the engine synchronises before each stamp. Weights are random unless `--checkpoint`
is given (the time does not depend on their values). tokens/s counts the output
tokens (K frames x tokens per frame) generated per second of DiT time.

    marionette bench model --preset cpu --steps 2 --json bench/results/model-cpu-2step.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

GOAL_MS = 40.0      # the CPU-preset goal: DiT + decode per frame at 1-2 steps
SCHEMA = "marionette.bench.model/1"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset",
                        help="tiny | cpu | cpu32 | gpu (default: gpu with CUDA, else cpu)")
    parser.add_argument("--steps", type=int, help="denoising steps 1-4 (default: preset's)")
    parser.add_argument("--cache-write", choices=("clean", "last_step"),
                        help="cache-write mode (default: preset's)")
    parser.add_argument("--checkpoint", help="checkpoint directory (default: random weights)")
    parser.add_argument("--device", help="cpu | cuda (default: cuda if available)")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"),
                        help="inference dtype (default: bf16 on CUDA for the gpu preset, "
                        "else fp32)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: cores)")
    parser.add_argument("--warmup", type=int, default=8, help="warm-up chunks")
    parser.add_argument("--chunks", type=int, default=40, help="measured chunks")
    parser.add_argument("--note", default="", help="free text stored in the JSON")
    parser.add_argument("--json", help="write the result JSON here")


def _stats(ms: list[float]) -> dict[str, float]:
    return {"p50": round(float(np.percentile(ms, 50)), 3),
            "p95": round(float(np.percentile(ms, 95)), 3),
            "min": round(float(np.min(ms)), 3)}


def measure(engine: Any, warmup: int, chunks: int) -> dict[str, list[float]]:
    """Per-chunk ms per frame of 'dit', 'decode', 'frame', 'write', 'total' over
    `chunks` chunks."""
    from realtime.motion.types import FACE_DIM, N_PARTS, N_POSE_CHANNELS, MotionCondition

    cfg = engine.cfg
    rng = np.random.default_rng(0)
    P, K = cfg.pose_size, cfg.chunk
    out: dict[str, list[float]] = {k: [] for k in ("dit", "decode", "frame", "write", "total")}
    frame_id = 0
    for c in range(warmup + chunks):
        conds = [MotionCondition(frame_id + j, time.monotonic(),
                                 rng.random((N_POSE_CHANNELS, P, P), dtype=np.float32),
                                 rng.standard_normal(FACE_DIM).astype(np.float32),
                                 np.ones(N_PARTS, np.float32)) for j in range(K)]
        frame_id += K
        frames = engine.push(conds)
        w0 = time.monotonic()
        engine.settle()
        w1 = time.monotonic()
        if c < warmup:
            continue
        m0, m1 = frames[0].stamps["model"]
        d0, d1 = frames[0].stamps["decode"]
        out["dit"].append((m1 - m0) * 1e3 / K)
        out["decode"].append((d1 - d0) * 1e3 / K)
        out["frame"].append((d1 - m0) * 1e3 / K)
        out["write"].append((w1 - w0) * 1e3 / K)
        out["total"].append((d1 - m0 + w1 - w0) * 1e3 / K)
    return out


def run(args: argparse.Namespace) -> int:
    import torch

    from bench.machine import git_commit, machine_info, utc_now
    from realtime.engine import StreamingEngine, configure_torch_threads
    from realtime.model.bundle import AnimationModel
    from realtime.model.checkpoint import load_checkpoint, prepare
    from realtime.model.config import default_preset, get_preset

    preset = args.preset or default_preset()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    threads = configure_torch_threads(args.threads)
    if args.checkpoint:
        model = prepare(load_checkpoint(args.checkpoint, preset, device), device, args.dtype)
    else:
        model = prepare(AnimationModel.random(get_preset(preset)), device, args.dtype)
    engine = StreamingEngine(model, steps=args.steps, cache_write=args.cache_write)
    rng = np.random.default_rng(1)
    engine.set_reference([rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
                          for _ in range(model.cfg.ref_frames)])
    ms = measure(engine, args.warmup, args.chunks)

    cfg = model.cfg
    dit_p50 = float(np.percentile(np.add(ms["dit"], ms["write"]), 50))   # every DiT pass
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "bench": "model",
        "preset": preset,
        "steps": engine.steps,
        "cache_write": engine.cache_write,
        "device": {"torch_device": device, "dtype": str(model.dtype).replace("torch.", ""),
                   "threads": threads, **machine_info()},
        "commit": git_commit(),
        "date": utc_now(),
        "weights": args.checkpoint or "random",
        "config": cfg.to_dict(),
        "tokens_per_frame": cfg.tokens_per_frame,
        "warmup_chunks": args.warmup,
        "chunks": args.chunks,
        "ms_per_frame": {k: _stats(v) for k, v in ms.items()},
        "tokens_per_s": round(cfg.tokens_per_frame * 1e3 / dit_p50, 1),
        "goal_ms_per_frame": GOAL_MS,
        "meets_goal_p50": float(np.percentile(ms["total"], 50)) <= GOAL_MS,
        "note": args.note,
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    t = result["ms_per_frame"]
    print(f"{preset} {engine.steps} step(s), {engine.cache_write}, {device} x{threads}: "
          f"dit {t['dit']['p50']:.1f} (p95 {t['dit']['p95']:.1f}) + decode "
          f"{t['decode']['p50']:.1f} (p95 {t['decode']['p95']:.1f}) = "
          f"{t['frame']['p50']:.1f} ms/frame (p95 {t['frame']['p95']:.1f}), then the cache "
          f"write {t['write']['p50']:.1f}: {t['total']['p50']:.1f} ms of compute per frame "
          f"(p95 {t['total']['p95']:.1f}); {result['tokens_per_s']:.0f} tokens/s")
    print(json.dumps({k: result[k] for k in ("bench", "preset", "steps", "cache_write",
                                             "ms_per_frame", "tokens_per_s", "commit")}))
    return 0
