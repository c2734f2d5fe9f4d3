"""Where the chunk-attention kernel's time goes on a GPU (companion to bench/kernels.py).

For a few shapes, every tile config the autotuner tries is launched at a fixed
config and reported with the compiled kernel's registers per thread, spills and
shared memory, and its do_bench median:
  full        the shipped kernel (RoPE applied to every key tile as it is loaded)
  no_rope_k   the same kernel with the key rotation left out (wrong output): the
              time RoPE-on-load costs, i.e. what storing keys pre-rotated would save
and, as floors on the same problem:
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

from bench.kernels import attention_flops, attention_shapes, gathered_rotated, make_attention
from bench.machine import git_commit

CONFIGS = ((64, 64, 4, 2), (64, 64, 4, 3), (128, 64, 8, 2), (128, 64, 8, 3), (64, 32, 4, 3),
           (128, 32, 4, 3), (64, 128, 4, 2), (128, 128, 8, 2))
SHAPES = ("preset-cpu", "preset-gpu", "256px-k4-w32", "512px-k1-w4", "512px-k4-w32")


def shapes() -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in attention_shapes("cuda", quick=False)}


def launch(p: dict[str, Any], cfg: tuple[int, int, int, int], rope_k: bool) -> Any:
    import triton

    from kernels.triton_attention import _chunk_attn_fwd, kernel_args

    args = kernel_args(p["q"], p["k"], p["v"], p["kc"], p["vc"], *p["state"], p["layout"],
                       out=p.setdefault("out", None))
    p["out"] = args[5]
    bm, bn, w, s = cfg
    B, H, Lq, D = p["q"].shape
    return _chunk_attn_fwd[(triton.cdiv(Lq, bm), B * H)](
        *args, HALF=D // 2, BLOCK_M=bm, BLOCK_N=bn, IEEE=False, INTERP=False, COUNT=False,
        ROPE_K=rope_k, num_warps=w, num_stages=s)


def profile_shape(shape: dict[str, Any]) -> list[dict[str, Any]]:
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from triton.testing import do_bench

    p = make_attention(shape, torch.bfloat16, "cuda")
    flops = attention_flops(p)
    rows = []
    for cfg in CONFIGS:
        for rope_k in (True, False):
            try:
                k = launch(p, cfg, rope_k)
                ms = do_bench(functools.partial(launch, p, cfg, rope_k), warmup=25, rep=100)
            except Exception as exc:  # noqa: BLE001  (out of resources at this config)
                rows.append(dict(shape=shape["name"], config=cfg, rope_k=rope_k,
                                 error=f"{type(exc).__name__}: {exc}"[:200]))
                continue
            rows.append(dict(shape=shape["name"], config=cfg, rope_k=rope_k, ms=ms,
                             tflops=flops / ms / 1e9, n_regs=getattr(k, "n_regs", None),
                             n_spills=getattr(k, "n_spills", None),
                             shared=k.metadata.shared if hasattr(k, "metadata") else None))
    q, kr, vv, _ = gathered_rotated(p)
    q, kr, vv = q.contiguous(), kr.contiguous(), vv.contiguous()

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
    ap.add_argument("--no-rope-k", action="store_true")
    args = ap.parse_args()
    import torch

    table = shapes()
    if args.single:
        p = make_attention(table[args.single], torch.bfloat16, "cuda")
        cfg = tuple(int(x) for x in args.block.split(","))
        for _ in range(2):
            k = launch(p, cfg, not args.no_rope_k)  # type: ignore[arg-type]
        torch.cuda.synchronize()
        print(json.dumps({"shape": args.single, "config": cfg, "n_regs": k.n_regs,
                          "n_spills": k.n_spills}))
        return 0
    rows: list[dict[str, Any]] = []
    for name in args.shapes.split(","):
        rows += profile_shape(table[name])
        best = {rk: min((r for r in rows if r["shape"] == name and r.get("rope_k") is rk
                         and "ms" in r), key=lambda r: r["ms"]) for rk in (True, False)}
        floor = next(r for r in rows if r["shape"] == name and r.get("backend"))
        print(f"{name:16} full {best[True]['ms']:.4f} ms {best[True]['config']} "
              f"regs {best[True]['n_regs']} spills {best[True]['n_spills']} | no_rope_k "
              f"{best[False]['ms']:.4f} ms {best[False]['config']} | sdpa contig "
              f"{floor['ms']:.4f} ms ({floor['tflops']:.0f} TFLOP/s)", flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(
                {"gpu": torch.cuda.get_device_name(), "commit": git_commit(),
                 "date": datetime.now(UTC).isoformat(timespec="seconds"), "rows": rows},
                indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
