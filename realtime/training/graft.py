"""`marionette train graft AE --dit-from CKPT --out DIR`: a trained transformer on a new
autoencoder, to start a teacher there instead of from nothing.

A preset that changes only the latent grid (`cpu32`: the `cpu` transformer on
32x32x4 latents, 4x4 latent pixels a token) keeps every transformer weight's shape
but three: the patch embedding and the final layer, which read and write latents
(left as AE's checkpoint initialised them), and the pose encoder's pooling, which
now covers each token's square of maps twice as fine. That one starts as the old
kernel spread over the finer square (each weight repeated 2x2 and divided by 4), so
on maps that are the old ones upsampled it pools exactly what it pooled before.
Everything else (attention, MLPs, the adaLN modulation, the time, face and presence
embeddings, the pose encoder's conv) is copied.

Stop 38 (the default checkpoint's `history/EXPERIMENTS.md`): a teacher grafted so
from the shipped one onto a fresh `cpu32` autoencoder reached 18.6 dB in 35 CPU-
minutes, where one from nothing reached 15.7 dB in 50 (the shipped teacher: 19.3).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

POOL = "dit.pose_encoder.pool.weight"


def spread_kernel(w: torch.Tensor, factor: int) -> torch.Tensor:
    """A (C_out, C_in, k, k) pooling kernel for maps `factor` times finer: each weight
    over a factor x factor square, divided by its area (the same sum on upsampled maps)."""
    return w.repeat_interleave(factor, 2).repeat_interleave(factor, 3) / (factor * factor)


def graft(ae_path: Path, dit_path: Path, out: Path) -> dict[str, list[str]]:
    """Write AE's checkpoint with DIT's transformer weights wherever they fit (see the
    module docstring) as `out`; -> {'copied', 'spread', 'kept'} weight names of the
    result, and 'dropped': DIT's transformer weights the result has no place for
    (such as a finer-pose-map path, `pose_scale` above the target's).
    ValueError for transformers of other widths or depths."""
    from realtime.model.checkpoint import load_checkpoint, read_meta, save_checkpoint

    target, source = load_checkpoint(ae_path), load_checkpoint(dit_path)
    a, b = target.cfg, source.cfg
    for field in ("width", "depth", "heads", "mlp_ratio", "pose_hidden", "face_maps"):
        if getattr(a, field) != getattr(b, field):
            raise ValueError(f"{dit_path}'s transformer has {field} {getattr(b, field)}, "
                             f"{ae_path}'s {getattr(a, field)}: nothing to graft")
    state, theirs = target.state_dict(), source.state_dict()
    done: dict[str, list[str]] = {"copied": [], "spread": [], "kept": [],
                                  "dropped": sorted(k for k in theirs
                                                    if k.startswith("dit.") and k not in state)}
    for name, w in state.items():
        if not name.startswith("dit."):
            continue
        w2 = theirs.get(name)
        if w2 is not None and w2.shape == w.shape:
            state[name] = w2.clone()
            done["copied"].append(name)
        elif name == POOL and w2 is not None and w.shape[-1] % w2.shape[-1] == 0 \
                and w.shape[:2] == w2.shape[:2]:
            state[name] = spread_kernel(w2, w.shape[-1] // w2.shape[-1])
            done["spread"].append(name)
        else:
            done["kept"].append(name)
    target.load_state_dict(state)
    meta = read_meta(ae_path)
    meta["graft"] = {"autoencoder": str(ae_path), "dit_from": str(dit_path), **done}
    save_checkpoint(target, out, meta=meta)
    return done


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("ae", type=Path, help="checkpoint whose autoencoder (and latent grid) "
                                         "to keep, e.g. a `train ae` run")
    p.add_argument("--dit-from", type=Path, required=True,
                   help="checkpoint whose transformer to copy, e.g. a trained teacher")
    p.add_argument("--out", type=Path, required=True, help="checkpoint directory to write")


def run(args: argparse.Namespace) -> int:
    try:
        done = graft(args.ae, args.dit_from, args.out)
    except (ValueError, FileNotFoundError) as e:
        print(f"marionette train graft: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {len(done['copied'])} transformer weights copied, "
          f"{len(done['spread'])} spread over finer maps, {len(done['kept'])} as initialised "
          f"({', '.join(done['kept'])}), {len(done['dropped'])} of the source's left out  "
          f"(marionette train teacher --init {args.out} ...)")
    return 0
