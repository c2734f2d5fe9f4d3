"""Where the chunk-attention kernel's time goes on a GPU (companion to bench/kernels.py).

For a few shapes, every tile config the autotuner tries is launched at a fixed
config and reported with the compiled attention kernel's registers per thread,
spills and shared memory, and its do_bench median; then the RoPE pass the entry
point runs before it (queries at both clocks, chunk keys) and, as a floor on the
same problem:
  sdpa_flash_contig  SDPA's flash backend on the already gathered, rotated, contiguous
                     q/k/v (no gather, no RoPE: pure attention)

    PYTHONPATH=. python -m bench.kernels_profile --json OUT.json
    PYTHONPATH=. python -m bench.kernels_profile --single 512px-k4-w32 --block 128,64,8,3
        (two launches at one config, for `ncu -k regex:_chunk_attn_fwd --launch-skip 1`)
"""

from __future__ import annotations

import argparse
import functools
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.kernels import attention_flops, attention_shapes, make_attention, user_inputs
from bench.machine import git_commit
from kernels.triton_attention import CONFIGS

SHAPES = ("preset-cpu", "preset-gpu", "256px-k4-w32", "512px-k1-w4", "512px-k4-w32")


def shapes() -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in attention_shapes("cuda", quick=False)}


def launch(p: dict[str, Any], cfg: tuple[int, int, int, int]) -> Any:
    """The attention kernel alone at one tile config (inputs as if rotated)."""
    import triton

    from bench.kernels import _state
    from kernels.triton_attention import _chunk_attn_fwd, kernel_args

    args = kernel_args(p["q"], p["q"], p["k"], p["v"], p["kc"], p["vc"], *_state(p)[:3],
                       p["layout"], out=p.setdefault("out", None))
    p["out"] = args[6]
    bm, bn, w, s = cfg
    B, H, Lq, D = p["q"].shape
    return _chunk_attn_fwd[(triton.cdiv(Lq, bm), B * H)](
        *args, D=D, BLOCK_M=bm, BLOCK_N=bn, IEEE=False, INTERP=False, COUNT=False,
        ALIGNED=p["layout"].tokens_per_frame % bn == 0, num_warps=w, num_stages=s)


def rope_pass(p: dict[str, Any]) -> Any:
    """What the entry point runs before the kernel: the chunk's q/k rotation."""
    from kernels.triton_rope import rope_qk_triton

    r = p["rope"]
    return rope_qk_triton(p["q"], p["k"], r.sink_cos, r.sink_sin, r.cos, r.sin)


def profile_shape(shape: dict[str, Any]) -> list[dict[str, Any]]:
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from triton.testing import do_bench

    p = make_attention(shape, torch.bfloat16, "cuda")
    flops = attention_flops(p)
    rows = []
    for cfg in CONFIGS:
        try:
            k = launch(p, cfg)
            ms = do_bench(functools.partial(launch, p, cfg), warmup=25, rep=100)
        except Exception as exc:  # noqa: BLE001  (out of resources at this config)
            rows.append(dict(shape=shape["name"], config=cfg,
                             error=f"{type(exc).__name__}: {exc}"[:200]))
            continue
        rows.append(dict(shape=shape["name"], config=cfg, backend="attention_kernel", ms=ms,
                         tflops=flops / ms / 1e9, n_regs=getattr(k, "n_regs", None),
                         n_spills=getattr(k, "n_spills", None),
                         shared=k.metadata.shared if hasattr(k, "metadata") else None))
    ms = do_bench(functools.partial(rope_pass, p), warmup=25, rep=100)
    rows.append(dict(shape=shape["name"], config=None, backend="rope_pass", ms=ms))
    q, kr, vv = (t.contiguous() for t in user_inputs(p))

    def floor() -> Any:
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return F.scaled_dot_product_attention(q, kr, vv)

    ms = do_bench(floor, warmup=25, rep=100)
    rows.append(dict(shape=shape["name"], config=None, backend="sdpa_flash_contig", ms=ms,
                     tflops=flops / ms / 1e9))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=None)
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--single", default=None, help="one shape: two launches at --block")
    ap.add_argument("--block", default="128,64,8,3", help="BLOCK_M,BLOCK_N,warps,stages")
    args = ap.parse_args()
    import torch

    table = shapes()
    if args.single:
        p = make_attention(table[args.single], torch.bfloat16, "cuda")
        cfg = tuple(int(x) for x in args.block.split(","))
        for _ in range(2):
            k = launch(p, cfg)  # type: ignore[arg-type]
        torch.cuda.synchronize()
        print(json.dumps({"shape": args.single, "config": cfg, "n_regs": k.n_regs,
                          "n_spills": k.n_spills}))
        return 0
    rows: list[dict[str, Any]] = []
    for name in args.shapes.split(","):
        rows += profile_shape(table[name])
        mine = [r for r in rows if r["shape"] == name and r.get("backend") == "attention_kernel"]
        best = min(mine, key=lambda r: r["ms"])
        other = {r["backend"]: r for r in rows if r["shape"] == name and r.get("config") is None}
        print(f"{name:16} attention {best['ms']:.4f} ms {best['config']} regs {best['n_regs']} "
              f"spills {best['n_spills']} ({best['tflops']:.0f} TFLOP/s) | rope pass "
              f"{other['rope_pass']['ms']:.4f} ms | sdpa contig "
              f"{other['sdpa_flash_contig']['ms']:.4f} ms "
              f"({other['sdpa_flash_contig']['tflops']:.0f} TFLOP/s)", flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(
                {"gpu": torch.cuda.get_device_name(), "commit": git_commit(),
                 "date": datetime.now(UTC).isoformat(timespec="seconds"), "rows": rows},
                indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
