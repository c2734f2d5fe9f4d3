"""`marionette train soup CKPT CKPT [...] --out DIR [--weights W W ...]`: several
checkpoints of one architecture averaged weight by weight.

Students trained further from one checkpoint with other training seeds land in one
basin of the loss, where the mean of their weights tends to be better than any of
them ("model soups", Wortsman et al., ICML 2022, arXiv:2203.05482). Stop 30 measured
it on this model (the default checkpoint's `history/EXPERIMENTS.md`): three seeds of
one recipe drifted -0.13 to -0.52 dB over 3000 frames and scored 18.52 to 18.95 dB;
their average scored 19.19 dB, drifted -0.14 dB and ended the stream 0.4 dB above the
best of them. No training and no data: seconds on a CPU.

The checkpoints must agree on the architecture and on the inference settings (chunk,
steps, cache write), so the soup streams as each of them did. The first one's
teacher (`CKPT/teacher`) is copied beside the soup, as the student stage leaves it,
so `marionette eval` compares against it; its `meta` is the first one's, with
`soup` naming what was averaged and how.

`--dit-only` averages the DiT alone and keeps the first checkpoint's autoencoder.
Each shipped student wears a decoder fine-tuned on its own streams, while runs
trained again from an older checkpoint carry that checkpoint's decoder; the student
stage never changes the autoencoder, so their DiTs can be averaged and the result
decoded by the shipped decoder (stop 31 in `history/EXPERIMENTS.md`).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path


def soup(paths: list[Path], out: Path, weights: list[float] | None = None,
         dit_only: bool = False) -> Path:
    """Write the weighted mean of `paths`' weights (equal weights by default) as the
    checkpoint `out`; with `dit_only`, of the DiT's alone, the autoencoder being the
    first checkpoint's. ValueError (CheckpointError) for anything that cannot be
    averaged."""
    from realtime.model.checkpoint import load_checkpoint, read_meta, save_checkpoint

    if len(paths) < 2:
        raise ValueError("a soup needs at least two checkpoints")
    weights = [1.0] * len(paths) if weights is None else [float(w) for w in weights]
    if len(weights) != len(paths):
        raise ValueError(f"{len(weights)} weights for {len(paths)} checkpoints")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError("weights must be non-negative and not all zero")
    out = Path(out)
    if any(out.resolve() == Path(p).resolve() for p in paths):
        raise ValueError(f"--out {out} is one of the checkpoints being averaged")

    models = [load_checkpoint(p) for p in paths]
    first = models[0].cfg.to_dict()
    for p, m in zip(paths[1:], models[1:], strict=True):
        diff = [f"{k}: {first[k]} vs {v}" for k, v in m.cfg.to_dict().items() if first[k] != v]
        if diff:
            raise ValueError(f"{p} differs from {paths[0]}: " + "; ".join(diff))

    total = sum(weights)
    states = [m.state_dict() for m in models]
    averaged = [k for k in states[0] if not dit_only or k.startswith("dit.")]
    mean = dict(states[0])
    mean.update({k: (sum(s[k].double() * w for s, w in zip(states, weights, strict=True))
                     / total).to(states[0][k].dtype)
                 for k in averaged})
    models[0].load_state_dict(mean)
    meta = read_meta(paths[0])
    meta["soup"] = {"of": [str(p) for p in paths], "weights": weights,
                    "how": ("weighted mean of the DiT's weights, the first one's autoencoder"
                            if dit_only else "weighted mean of every weight")}
    save_checkpoint(models[0], out, meta=meta)
    teacher = Path(paths[0]) / "teacher"
    if teacher.is_dir():
        shutil.copytree(teacher, out / "teacher", dirs_exist_ok=True)
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoints", nargs="+", type=Path,
                   help="checkpoint directories of one architecture (two or more)")
    p.add_argument("--out", type=Path, required=True, help="checkpoint directory to write")
    p.add_argument("--weights", type=float, nargs="+", default=None,
                   help="one weight per checkpoint (default: all equal)")
    p.add_argument("--dit-only", action="store_true",
                   help="average the DiT only and keep the first checkpoint's autoencoder "
                        "(its decoder fine-tuned for it)")


def run(args: argparse.Namespace) -> int:
    try:
        out = soup(args.checkpoints, args.out, args.weights, dit_only=args.dit_only)
    except (ValueError, FileNotFoundError) as e:
        print(f"marionette train soup: {e}", file=sys.stderr)
        return 2
    print(f"wrote the average of {len(args.checkpoints)} checkpoints to {out}  "
          f"(marionette eval --checkpoint {out} --data DIR)")
    return 0
