"""`marionette bench kernels`: the Triton kernels against PyTorch on the model's shapes.

One entry per kernel x shape x backend: kernel, shape, backend, dtype, ms (median),
p20/p80 ms, tflops (attention, matmul), gbps (attention: the fewest bytes it must move
over its time; norm, copy), and max_err_ratio: the
backend's max abs error against the fp32 reference divided by PyTorch's own error at
the same precision (the tests' pass rule is <= 2).

GPU (CUDA): `triton.testing.do_bench` medians for the cpu/gpu presets' real shapes
and larger streams (chunk 1-4 frames vs window 4-32 frames at 256^2 and 512^2
frames: 256 and 1024 tokens per frame), comparing
  triton            kernels.triton_attention (ring read in place, RoPE on load)
  sdpa_flash_gather a user's version: gather sink + window in age order into a
                    contiguous cache, cat the chunk, RoPE, SDPA flash backend
                    (gather, RoPE and cat included in the time)
  flex              FlexAttention over the rotated, concatenated cache with the
                    equivalent block mask (RoPE and cat included; mask built once)
  torch             the entry point's PyTorch path (kernels.torch_attention)
plus a measured dense bf16 matmul rate and copy bandwidth as ceilings.
CPU: the PyTorch path's and the fp32 reference's timings, and the Triton kernels'
correctness under the interpreter (their "ms" is the interpreter's, meaningless).

    marionette bench kernels --json bench/results/kernels-cpu.json
    PYTHONPATH=. python -m realtime.cli bench kernels --json bench/results/kernels-h100.json
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.machine import cpu_model, git_commit

if TYPE_CHECKING:
    import torch

REPO = Path(__file__).resolve().parents[1]
FP32_FLOOR = 1e-5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", dest="json_out", metavar="OUT.json", default=None,
                        help="write all entries with device, commit and date here")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--quick", action="store_true",
                        help="GPU: presets + the smallest and largest streams only")
    parser.add_argument("--no-interpreter", action="store_true",
                        help="CPU: skip the Triton-interpreter correctness entries")
    parser.add_argument("--only", metavar="TEXT", default=None,
                        help="only shapes whose name contains TEXT (split a long GPU run)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU: torch intra-op threads (default: torch's choice)")
    parser.add_argument("--dry-run", action="store_true",
                        help="CPU: run the GPU comparison (all backends, the stream shapes "
                             "shrunk to 4x6-token frames, 2 heads) to check its logic")


# --- shapes -------------------------------------------------------------------------

def attention_shapes(device: str, quick: bool, dry_run: bool = False) -> list[dict[str, Any]]:
    """Attention problems: name, layout fields, sessions B, heads H, head dim D.
    dry_run: the GPU list, shrunk to run on a CPU."""
    from realtime.model.config import PRESETS

    if dry_run:
        return [dict(s, grid=(4, 6), H=2, B=min(s["B"], 2))
                for s in attention_shapes("cuda", quick=True)]
    shapes = []
    names = ("tiny", "cpu") if device == "cpu" else ("cpu", "gpu")
    for name in names:
        c = PRESETS[name]
        shapes.append(dict(name=f"preset-{name}", sink=c.ref_frames, window=c.window,
                           chunk=c.chunk, grid=c.grid, B=1, H=c.heads, D=c.head_dim))
    if device == "cuda":
        for side, grid in ((256, (16, 16)), (512, (32, 32))):
            for chunk in (1, 2, 4):
                for window in (4, 8, 16, 32):
                    if quick and (chunk, window) not in ((1, 4), (4, 32)):
                        continue
                    shapes.append(dict(name=f"{side}px-k{chunk}-w{window}", sink=2,
                                       window=window, chunk=chunk, grid=grid, B=1, H=12,
                                       D=64))
        shapes.append(dict(name="256px-k4-w12-8sessions", sink=2, window=12, chunk=4,
                           grid=(16, 16), B=8, H=12, D=64))
        # presets first, then the largest: a run cut short keeps what the goals need
        shapes.sort(key=lambda s: (not str(s["name"]).startswith("preset-"),
                                   s["name"] != "512px-k4-w32"))
    return shapes


def norm_shapes(device: str) -> list[dict[str, Any]]:
    from realtime.model.config import PRESETS

    out = []
    for name in ("tiny", "cpu", "gpu"):
        c = PRESETS[name]
        out.append(dict(name=f"preset-{name}", B=1, L=c.chunk * c.tokens_per_frame,
                        C=c.width, G=c.chunk))
    if device == "cuda":
        out += [dict(name="512px-k4-8sessions", B=8, L=4 * 1024, C=768, G=4),
                dict(name="256px-k4-8sessions-C1024", B=8, L=4 * 256, C=1024, G=4),
                dict(name="512px-k4-16sessions-C1024", B=16, L=4 * 1024, C=1024, G=4)]
    return out


# --- timing -------------------------------------------------------------------------

def time_cpu(fn: Callable[[], Any], budget_s: float = 1.0, min_reps: int = 5,
             warmup: int = 2) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    ts: list[float] = []
    start = time.perf_counter()
    while len(ts) < min_reps or (time.perf_counter() - start < budget_s and len(ts) < 200):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    ts.sort()

    def q(p: float) -> float:
        return ts[min(len(ts) - 1, int(p * len(ts)))]

    return {"ms": q(0.5), "p20_ms": q(0.2), "p80_ms": q(0.8), "reps": len(ts)}


def time_cpu_interleaved(runs: dict[str, Callable[[], Any]], budget_s: float = 2.0,
                         min_reps: int = 7) -> dict[str, dict[str, float]]:
    """Round-robin over the backends so each sees the same (shared) CPU load."""
    for fn in runs.values():
        fn()
    ts: dict[str, list[float]] = {n: [] for n in runs}
    start = time.perf_counter()
    while (min(len(v) for v in ts.values()) < min_reps
           or (time.perf_counter() - start < budget_s and len(ts[next(iter(ts))]) < 200)):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            ts[name].append((time.perf_counter() - t0) * 1e3)
    out = {}
    for name, v in ts.items():
        v.sort()
        out[name] = {"ms": v[len(v) // 2], "p20_ms": v[int(0.2 * len(v))],
                     "p80_ms": v[int(0.8 * len(v))], "reps": len(v)}
    return out


def time_gpu(fn: Callable[[], Any]) -> dict[str, float]:
    from triton.testing import do_bench

    p50, p20, p80 = do_bench(fn, quantiles=[0.5, 0.2, 0.8], warmup=25, rep=100)
    return {"ms": p50, "p20_ms": p20, "p80_ms": p80}


# --- attention problems and the PyTorch baselines ---------------------------------------

def _state(p: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The cache state of `make_attention`'s inputs: sink_len, ring_start, window_len,
    frame_pos (typed, so that it unpacks into the kernels' arguments)."""
    state: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] = p["state"]
    return state


def make_attention(shape: dict[str, Any], dtype: Any, device: str) -> dict[str, Any]:
    """Random inputs, every session full (steady state) with its ring wrapped, an hour
    into its stream (frame_pos 108,000 at 30 fps). The cache holds keys as stored
    (rotated); `rope` is the chunk's tables, computed once per chunk as the model
    does (not timed; the PyTorch user's version below gets the same tables)."""
    import torch

    from kernels.attention import chunk_rope
    from kernels.layout import CacheLayout

    layout = CacheLayout(shape["sink"], shape["window"], shape["chunk"], tuple(shape["grid"]))
    B, H, D = shape["B"], shape["H"], shape["D"]
    g = torch.Generator(device=device).manual_seed(0)

    def rnd(*s: int) -> torch.Tensor:
        return torch.randn(*s, generator=g, device=device).to(dtype)

    i32 = torch.int32
    state = (torch.full((B,), layout.sink_tokens, dtype=i32, device=device),
             torch.full((B,), layout.window // 2 + 1, dtype=i32, device=device) % layout.window,
             torch.full((B,), layout.window, dtype=i32, device=device),
             torch.full((B,), 108_000, dtype=i32, device=device))
    Lq, S = layout.chunk_tokens, layout.capacity
    return dict(layout=layout, q=rnd(B, H, Lq, D), k=rnd(B, H, Lq, D), v=rnd(B, H, Lq, D),
                kc=rnd(B, H, S, D), vc=rnd(B, H, S, D), state=state,
                rope=chunk_rope(layout, state[3], D))


def user_inputs(p: dict[str, Any], gather: bool = True) -> tuple[Any, Any, Any]:
    """A PyTorch user's q, k, v over the same stored cache: rotate the chunk's q and k
    and the sink's keys (time shift), gather the window in age order into a contiguous
    cache (or, gather=False, take the ring as it lies, for a masked kernel), append
    the chunk. Full sessions with one ring state, as make_attention builds them."""
    import torch

    from kernels.rope import rotate

    lay, ring_start = p["layout"], p["state"][1]
    r = p["rope"]           # stream-clock tables and the sink's time shift, once per chunk
    cos, sin, s_cos, s_sin = r.cos, r.sin, r.shift_cos, r.shift_sin
    n, T, W = lay.sink_tokens, lay.tokens_per_frame, lay.window
    kc, vc, dt = p["kc"], p["vc"], p["q"].dtype
    q = rotate(p["q"].float(), cos[:, None], sin[:, None]).to(dt)
    k = rotate(p["k"].float(), cos[:, None], sin[:, None]).to(dt)
    sink = rotate(kc[:, :, :n].float(), s_cos[:, None], s_sin[:, None]).to(dt)
    if gather:
        j = torch.arange(W * T, device=kc.device)
        idx = n + ((ring_start[0] + j // T) % W) * T + j % T
        win_k, win_v = kc.index_select(2, idx), vc.index_select(2, idx)
    else:
        win_k, win_v = kc[:, :, n:], vc[:, :, n:]
    return q, torch.cat((sink, win_k, k), 2), torch.cat((vc[:, :, :n], win_v, p["v"]), 2)


def sdpa_flash_gather(p: dict[str, Any]) -> Any:
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q, k, v = user_inputs(p)
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        return F.scaled_dot_product_attention(q, k, v)


def flex_runner(p: dict[str, Any], compiled: bool = True) -> Callable[[], Any]:
    """FlexAttention over [sink ; ring as it lies ; chunk] (rotated as `user_inputs`)
    with a block mask of the valid slots, built once (it changes per chunk in a
    stream, so this flatters Flex slightly). Softmax is order-free, so the ring needs
    no gather, only the mask."""
    import torch
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    from kernels.torch_attention import valid_slots

    lay, (sink_len, ring_start, window_len, _) = p["layout"], p["state"]
    dev = p["q"].device
    valid = valid_slots(lay, sink_len, ring_start, window_len)
    keep = torch.cat((valid, valid.new_ones(valid.shape[0], lay.chunk_tokens)), 1)

    def mask_mod(b, h, q_idx, kv_idx):  # type: ignore[no-untyped-def]
        return keep[b, kv_idx]

    B, H, Lq, _ = p["q"].shape
    bm = create_block_mask(mask_mod, B, None, Lq, lay.capacity + Lq, device=dev)
    flex: Any = _compiled_flex() if compiled else flex_attention

    def run() -> Any:
        q, k, v = user_inputs(p, gather=False)
        return flex(q, k, v, block_mask=bm)

    return run


@functools.cache
def _compiled_flex() -> Callable[..., Any]:
    """One compiled FlexAttention for every shape (dynamic after the first recompile;
    a raised recompile limit so no shape falls back to the eager, score-materialising
    path)."""
    import torch
    import torch._dynamo
    from torch.nn.attention.flex_attention import flex_attention

    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    return torch.compile(flex_attention)


def attention_flops(p: dict[str, Any]) -> float:
    lay, (sink_len, _, window_len, _) = p["layout"], p["state"]
    B, H, Lq, D = p["q"].shape
    keys = (sink_len.sum() + window_len.sum() * lay.tokens_per_frame).item() / B + Lq
    return 4.0 * B * H * Lq * keys * D


def attention_bytes(shape: dict[str, Any], element_size: int) -> float:
    """The fewest bytes a chunk attention moves (full sessions, as make_attention
    builds them): read q, k, v of the chunk and the valid cache keys and values once,
    write the output once."""
    T = shape["grid"][0] * shape["grid"][1]
    Lq, cache = shape["chunk"] * T, (shape["sink"] + shape["window"]) * T
    return float(element_size * shape["B"] * shape["H"] * shape["D"] * (4 * Lq + 2 * cache))


def attention_errors(p: dict[str, Any], outs: dict[str, Any], heads: int = 2) -> dict[str, float]:
    """max_err_ratio per backend on the first `heads` heads (bounds the fp32 ref's memory)."""
    import torch.nn.functional as F

    from kernels.attention import chunk_attention_ref

    h = slice(0, heads)
    sub = {n: p[n][:, h] for n in ("q", "k", "v", "kc", "vc")}
    f = {n: t.float() for n, t in sub.items()}
    ref = chunk_attention_ref(f["q"], f["k"], f["v"], f["kc"], f["vc"], *_state(p),
                              p["layout"])
    base = (F.scaled_dot_product_attention(*user_inputs({**p, **sub})).float() - ref
            ).abs().max().item()
    floor = FP32_FLOOR / 2 if p["q"].dtype.is_floating_point and p["q"].element_size() == 4 \
        else 1e-7
    return {n: (o[:, h].float() - ref).abs().max().item() / max(base, floor)
            for n, o in outs.items()}


# --- runs -----------------------------------------------------------------------------

def bench_attention(device: str, quick: bool, interpreter: bool, dry_run: bool = False,
                    only: str | None = None,
                    progress: Callable[[list[dict[str, Any]]], None] | None = None
                    ) -> list[dict[str, Any]]:
    import torch

    from kernels._dispatch import force_backend, kernel_module
    from kernels.attention import chunk_attention, chunk_attention_ref

    def entry(backend: str, p: dict[str, Any]) -> Any:
        """The entry point as the model calls it, per layer: RoPE passes + attention."""
        with force_backend(backend):  # type: ignore[arg-type]
            return chunk_attention(p["q"], p["k"], p["v"], p["kc"], p["vc"], *_state(p),
                                   p["layout"], rope=p["rope"])

    entries = []
    dtype = torch.bfloat16 if device == "cuda" or dry_run else torch.float32
    for shape in attention_shapes(device, quick, dry_run):
        if only and only not in shape["name"]:
            continue
        p = make_attention(shape, dtype, device)
        runs: dict[str, Callable[[], Any]] = {"torch": functools.partial(entry, "torch", p)}
        if device == "cuda" or dry_run:
            tri = kernel_module("kernels.triton_attention", p["q"].device)
            rotated = (p["q"], p["q"], p["k"])          # timing only: attention kernel alone
            runs = {"triton": functools.partial(entry, "triton", p),
                    "triton_attn_only": functools.partial(
                        tri.chunk_attention_triton, *rotated, p["v"], p["kc"], p["vc"],
                        *_state(p)[:3], p["layout"]),
                    "sdpa_flash_gather": functools.partial(sdpa_flash_gather, p),
                    "flex": flex_runner(p, compiled=not dry_run), **runs}
        else:
            runs["torch_ref"] = functools.partial(
                chunk_attention_ref, p["q"], p["k"], p["v"], p["kc"], p["vc"], *_state(p),
                p["layout"])
        outs = {name: fn() for name, fn in runs.items()}
        errs = attention_errors(p, {n: o for n, o in outs.items()
                                    if n != "triton_attn_only"})   # its inputs are unrotated
        flops = attention_flops(p)
        shared = time_cpu_interleaved(runs) if device == "cpu" and not dry_run else {}
        for name, fn in runs.items():
            if device == "cuda":
                t = time_gpu(fn)
            elif dry_run:                       # logic check: one call each
                t = time_cpu(fn, budget_s=0.0, min_reps=1, warmup=0)
            else:
                t = shared[name]
            entries.append(dict(kernel="chunk_attention", shape=shape, backend=name,
                                dtype=str(dtype).removeprefix("torch."), **t, gflop=flops / 1e9,
                                tflops=flops / t["ms"] / 1e9,
                                gbps=attention_bytes(shape, p["q"].element_size()) / t["ms"] / 1e6,
                                max_err_ratio=errs.get(name)))
        if device == "cpu" and interpreter and not dry_run:
            entries += interpreted_attention(shape)
        del p, outs
        if device == "cuda":                # progress on a long GPU run
            print(shape["name"], " ".join(f"{e['backend']}={e['ms']:.4f}ms"
                                          for e in entries[-len(runs):]), flush=True)
        if progress is not None:
            progress(entries)
    return entries


def interpreted_attention(shape: dict[str, Any]) -> list[dict[str, Any]]:
    """The Triton kernels (RoPE + attention) under the interpreter, fp32 and bf16:
    correctness only."""
    import torch

    from kernels._dispatch import force_backend
    from kernels.attention import chunk_attention

    entries = []
    for dtype in (torch.float32, torch.bfloat16):
        p = make_attention(shape, dtype, "cpu")
        t0 = time.perf_counter()
        with force_backend("triton"):
            out = chunk_attention(p["q"], p["k"], p["v"], p["kc"], p["vc"], *_state(p),
                                  p["layout"], rope=p["rope"])
        ms = (time.perf_counter() - t0) * 1e3
        entries.append(dict(kernel="chunk_attention", shape=shape, backend="triton-interpreter",
                            dtype=str(dtype).removeprefix("torch."), ms=ms, tflops=None,
                            max_err_ratio=attention_errors(p, {"t": out})["t"],
                            note="interpreter time, not a kernel speed"))
    return entries


def bench_norm(device: str, interpreter: bool, only: str | None = None
               ) -> list[dict[str, Any]]:
    import torch

    from kernels._dispatch import kernel_module
    from kernels.norm import adaln_norm_ref, adaln_norm_torch

    entries = []
    dtypes = (torch.bfloat16,) if device == "cuda" else (torch.float32, torch.bfloat16)
    for shape in norm_shapes(device):
        if only and only not in shape["name"]:
            continue
        for dtype in dtypes:
            B, L, C, G = shape["B"], shape["L"], shape["C"], shape["G"]
            g = torch.Generator(device=device).manual_seed(0)
            x = (torch.randn(B, L, C, generator=g, device=device) * 2 + 1).to(dtype)
            mod = torch.randn(B, G, 2 * C, generator=g, device=device).to(dtype)
            shift, scale = mod.chunk(2, dim=-1)
            ref = adaln_norm_ref(x.float(), shift.float(), scale.float())
            base = (torch.nn.functional.layer_norm(x, (C,), eps=1e-6).view(B, G, L // G, C)
                    * (1 + scale[:, :, None]) + shift[:, :, None]).view(B, L, C)
            floor = FP32_FLOOR / 2 if dtype == torch.float32 else 1e-7
            base_err = max((base.float() - ref).abs().max().item(), floor)
            nbytes = (2 * B * L * C + 2 * B * G * C) * x.element_size()
            xs = (x, shift, scale)
            runs: dict[str, Callable[[], Any]] = {"torch": functools.partial(adaln_norm_torch,
                                                                             *xs)}
            if device == "cpu":
                runs["torch_ref"] = functools.partial(adaln_norm_ref, *xs)
            if device == "cuda" or (interpreter and L * C <= 1 << 17):
                tn = kernel_module("kernels.triton_norm", x.device)
                runs["triton" if device == "cuda" else "triton-interpreter"] = (
                    functools.partial(tn.adaln_norm_triton, *xs))
            shared = {} if device == "cuda" else time_cpu_interleaved(
                {n: f for n, f in runs.items() if n != "triton-interpreter"}, budget_s=0.5)
            for name, fn in runs.items():
                err = (fn().float() - ref).abs().max().item() / base_err
                if name == "triton-interpreter":
                    t0 = time.perf_counter()
                    fn()
                    t = {"ms": (time.perf_counter() - t0) * 1e3}
                else:
                    t = time_gpu(fn) if device == "cuda" else shared[name]
                entries.append(dict(kernel="adaln_norm", shape=shape, backend=name,
                                    dtype=str(dtype).removeprefix("torch."), **t,
                                    gbps=nbytes / t["ms"] / 1e6, max_err_ratio=err))
            if device == "cuda":
                # the ceiling at this size: a copy of x moves the norm's bytes (less the
                # shift/scale rows) with the same launch and tail costs, which a 1 GiB
                # copy amortises away
                dst = torch.empty_like(x)
                t = time_gpu(functools.partial(dst.copy_, x))
                entries.append(dict(kernel="copy", shape=shape, backend="torch",
                                    dtype=str(dtype).removeprefix("torch."), **t,
                                    gbps=2 * x.numel() * x.element_size() / t["ms"] / 1e6,
                                    max_err_ratio=None))
    return entries


def ceilings(device: str) -> list[dict[str, Any]]:
    """Measured dense bf16 matmul rate and copy bandwidth (GPU) or fp32 (CPU)."""
    import torch

    n = 8192 if device == "cuda" else 1024
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    t = time_gpu(lambda: a @ b) if device == "cuda" else time_cpu(lambda: a @ b)
    out = [dict(kernel="matmul", shape={"M": n, "N": n, "K": n}, backend="torch",
                dtype=str(dtype).removeprefix("torch."), **t, tflops=2 * n**3 / t["ms"] / 1e9,
                max_err_ratio=None)]
    numel = (1 << 29 if device == "cuda" else 1 << 24)
    src = torch.empty(numel, device=device, dtype=dtype).normal_()
    dst = torch.empty_like(src)
    t = time_gpu(lambda: dst.copy_(src)) if device == "cuda" else time_cpu(lambda: dst.copy_(src))
    out.append(dict(kernel="copy", shape={"bytes": numel * src.element_size()}, backend="torch",
                    dtype=str(dtype).removeprefix("torch."), **t,
                    gbps=2 * numel * src.element_size() / t["ms"] / 1e6, max_err_ratio=None))
    return out


# --- environment and output ---------------------------------------------------------------

def describe_device(device: str) -> dict[str, Any]:
    import torch
    import triton

    info: dict[str, Any] = {"kind": device, "torch": torch.__version__,
                            "triton": triton.__version__, "python": platform.python_version()}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
        try:
            info["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            info["driver"] = "unknown"
        info["cuda"] = torch.version.cuda
    info.update(cpu=cpu_model(), cores=len(os.sched_getaffinity(0)),
                threads=torch.get_num_threads(), loadavg_at_start=os.getloadavg())
    return info


def print_table(entries: list[dict[str, Any]]) -> None:
    print(f"{'kernel':16} {'shape':28} {'backend':19} {'dtype':9} {'ms':>10} "
          f"{'TFLOP/s':>8} {'GB/s':>8} {'err/pt':>7}")
    for e in entries:
        name = e["shape"].get("name", ",".join(f"{k}={v}" for k, v in e["shape"].items()))

        def f(v: Any, spec: str) -> str:
            return "-" if v is None else format(v, spec)

        print(f"{e['kernel']:16} {name:28} {e['backend']:19} {e['dtype']:9} "
              f"{f(e['ms'], '10.3f')} {f(e.get('tflops'), '8.3f')} {f(e.get('gbps'), '8.1f')} "
              f"{f(e['max_err_ratio'], '7.2f')}")


def goals(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's H100 goals read off the entries (GPU), or the PyTorch path's
    speed-up over the fp32 reference (CPU)."""
    by = {(e["kernel"], e["shape"].get("name"), e["backend"], e["dtype"]): e for e in entries}
    peak = next((e["tflops"] for e in entries if e["kernel"] == "matmul"), None)
    copy = next((e["gbps"] for e in entries if e["kernel"] == "copy"
                 and "name" not in e["shape"]), None)           # the 1 GiB ceiling
    out: dict[str, Any] = {}
    attn = [k for k in by if k[0] == "chunk_attention" and k[2] == "triton"]
    if attn:
        rows = []
        for k in attn:
            t = by[k]["ms"]
            rows.append({"shape": k[1],
                         "vs_flex": by[(k[0], k[1], "flex", k[3])]["ms"] / t,
                         "vs_sdpa_gather": by[(k[0], k[1], "sdpa_flash_gather", k[3])]["ms"] / t,
                         "frac_matmul_peak": by[k]["tflops"] / peak if peak else None})
        presets = [r for r in rows if str(r["shape"]).startswith("preset-")]
        largest = max(attn, key=lambda k: by[k]["gflop"])
        out["attention"] = rows
        out["faster_than_flex_on_presets"] = (
            all(r["vs_flex"] > 1 for r in presets) if presets else None)
        out["faster_than_sdpa_gather_on_presets"] = (
            all(r["vs_sdpa_gather"] > 1 for r in presets) if presets else None)
        out["frac_matmul_peak_on_largest"] = (by[largest]["tflops"] / peak) if peak else None
    norms = [e for e in entries if e["kernel"] == "adaln_norm" and e["backend"] == "triton"]
    if norms and copy:
        out["norm_frac_copy_bw"] = {e["shape"]["name"]: e["gbps"] / copy for e in norms}
    like = {(e["shape"].get("name"), e["dtype"]): e["gbps"] for e in entries
            if e["kernel"] == "copy" and "name" in e["shape"]}
    if norms and like:
        out["norm_frac_copy_same_bytes"] = {
            e["shape"]["name"]: e["gbps"] / like[(e["shape"]["name"], e["dtype"])]
            for e in norms if (e["shape"]["name"], e["dtype"]) in like}
    cpu = [(k, e) for k, e in by.items() if k[2] == "torch" and (k[0], k[1], "torch_ref", k[3])
           in by]
    if cpu:
        out["torch_path_speedup_vs_ref"] = {
            f"{k[0]}/{k[1]}/{k[3]}": by[(k[0], k[1], "torch_ref", k[3])]["ms"] / e["ms"]
            for k, e in cpu}
    return out


def command_line(args: argparse.Namespace) -> str:
    flags = [f"--device {args.device}"] + (["--quick"] if args.quick else [])
    flags += [f"--threads {args.threads}"] if args.threads else []
    flags += [f"--only {args.only}"] if args.only else []
    flags += ["--no-interpreter"] if args.no_interpreter else []
    flags += [f"--json {args.json_out}"] if args.json_out else []
    return "marionette bench kernels " + " ".join(flags)


def run(args: argparse.Namespace) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.dry_run:
        if device != "cpu":
            raise SystemExit("--dry-run is the CPU check of the GPU comparison")
        entries = bench_attention("cpu", True, True, dry_run=True, only=args.only)
        print_table(entries)
        print(json.dumps({"bench": "kernels", "dry_run": True, "entries": len(entries)}))
        return 0
    interpreter = device == "cpu" and not args.no_interpreter
    info = describe_device(device)          # before the run: its load average
    entries = ceilings(device)
    entries += bench_norm(device, interpreter, args.only)

    def save(attention: list[dict[str, Any]], done: bool = False) -> None:
        """Write the JSON so far (after each shape: a run cut short keeps its rows)."""
        if not args.json_out:
            return
        rows = entries + attention
        doc = {"device": info, "commit": git_commit(),
               "date": datetime.now(UTC).isoformat(timespec="seconds"),
               "command": command_line(args), "complete": done, "goals": goals(rows),
               "entries": rows,
               "notes": ("CPU: backends timed round-robin, ms = median; see loadavg_at_start "
                         "for other work on the machine. triton-interpreter rows check "
                         "correctness only (their ms is the interpreter's)."
                         if device == "cpu" else "GPU: triton.testing.do_bench medians.")}
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(doc, indent=1) + "\n")

    attention = bench_attention(device, args.quick, interpreter, only=args.only, progress=save)
    save(attention, done=True)
    entries += attention
    print_table(entries)
    worst = max((e["max_err_ratio"] for e in entries if e["max_err_ratio"] is not None),
                default=None)
    g = goals(entries)
    print(json.dumps({"bench": "kernels", "device": device, "entries": len(entries),
                      "worst_max_err_ratio": worst, "json": args.json_out,
                      **{k: v for k, v in g.items() if not isinstance(v, list | dict)}}))
    return 0
