"""Checkpoint I/O: a directory with safetensors weights and a JSON config.

    DIR/config.json        {"format_version": 1, "config": {ModelConfig fields}, "meta": {...}}
    DIR/model.safetensors  the AnimationModel's state dict ("dit.*", "ae.*")

Loading checks, in order, and fails with a `CheckpointError` that says what to do:
the files exist; the format version is one this code reads; the config's fields are
known and valid; an explicitly requested preset agrees with the checkpoint's
architecture; the weights file is complete; the weights' names and shapes match
the config. A checkpoint from before `face_maps` or `decoder_motion` existed loads as
it was saved, or, when a preset with them is asked for, upgraded by `add_face_maps`
/ `add_decoder_motion` (the new weights start at zero: same function). One that
gained finer pose maps (`pose_scale` above its preset's, `add_fine_pose`), the
face sketch plane (`add_face_sketch`) or more transformer blocks (`deepen`) loads
under its preset with them.
The shipped default lives in `realtime/checkpoints/default/`; until
training has produced one, `load_model` falls back to a random-init of the default
preset and logs a warning saying so.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch

from realtime.model.bundle import AnimationModel
from realtime.model.config import ModelConfig, default_preset, get_preset

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "default"

# Fields that change weight shapes or the cache layout; the rest (steps, shift, dtype,
# cache_write) are inference settings a preset may override.
ARCH_FIELDS = ("resolution", "latent_channels", "ae_widths", "patch", "width", "depth",
               "heads", "mlp_ratio", "pose_hidden", "pose_scale", "face_maps", "decoder_motion",
               "face_sketch", "chunk", "window", "ref_frames")
# Architecture flags a checkpoint from before them lacks; loading it under a preset that
# has them adds them at zero weight (see `upgrade`).
UPGRADABLE = ("face_maps", "decoder_motion", "face_sketch")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used, with the reason in the message."""


def save_checkpoint(model: AnimationModel, out: str | Path,
                    meta: dict[str, Any] | None = None) -> Path:
    """Write `out/config.json` and `out/model.safetensors`; returns `out`."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / WEIGHTS_FILE))
    # a meta carried over from another checkpoint keeps everything but its save time
    info = {"format_version": FORMAT_VERSION, "config": model.cfg.to_dict(),
            "meta": {**(meta or {}),
                     "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}
    (out / CONFIG_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return out


def read_config(path: str | Path) -> ModelConfig:
    """The ModelConfig of checkpoint directory `path`."""
    path = Path(path)
    cfg_path = path / CONFIG_FILE
    if not cfg_path.is_file():
        raise CheckpointError(f"{path} is not a checkpoint: {CONFIG_FILE} missing "
                              f"(create one with `marionette train init --preset cpu --out DIR`)")
    try:
        info = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{cfg_path} is not valid JSON: {e}") from e
    version = info.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{cfg_path}: checkpoint format version {version!r}, this code "
                              f"reads version {FORMAT_VERSION}")
    try:
        return ModelConfig.from_dict(info["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{cfg_path}: config does not match this code: {e}") from e


def read_meta(path: str | Path) -> dict[str, Any]:
    """The `meta` of checkpoint directory `path` (how it was trained; {} if none)."""
    cfg_path = Path(path) / CONFIG_FILE
    try:
        meta = json.loads(cfg_path.read_text()).get("meta", {})
    except FileNotFoundError:
        raise CheckpointError(f"{path} is not a checkpoint: {CONFIG_FILE} missing") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{cfg_path} is not valid JSON: {e}") from e
    return dict(meta)


def add_face_maps(model: AnimationModel) -> AnimationModel:
    """A checkpoint from before `face_maps` as a model with them: the pose encoder's
    new input planes start with zero weights, so it computes exactly what the old one
    did, and training can then teach it to use them."""
    if model.cfg.face_maps:
        return model
    if model.cfg.pose_scale != 2:
        raise CheckpointError("add face maps before finer pose maps (pose_scale 2 only)")
    cfg = model.cfg.with_(face_maps=True)
    new = AnimationModel(cfg).to(model.device, model.dtype)
    state = model.state_dict()
    conv = state["dit.pose_encoder.conv.weight"]                # (hidden, 16, 3, 3)
    pad = conv.new_zeros(conv.shape[0], cfg.face_dim, *conv.shape[2:])
    state["dit.pose_encoder.conv.weight"] = torch.cat((conv, pad), dim=1)
    new.load_state_dict(state)
    return new.train(model.training)


def add_face_sketch(model: AnimationModel) -> AnimationModel:
    """`model` reading the face sketch (`ModelConfig.face_sketch`): the pose encoder's
    new plane, after the POSE_CHANNELS, starts with zero weights, so it computes
    exactly what the old one did, and training can then teach it to use the plane."""
    if model.cfg.face_sketch:
        return model
    if model.cfg.pose_scale != 2:
        raise CheckpointError("add the face sketch before finer pose maps (pose_scale 2 only)")
    new = AnimationModel(model.cfg.with_(face_sketch=True)).to(model.device, model.dtype)
    state = model.state_dict()
    key = "dit.pose_encoder.conv.weight"
    conv = state[key]                               # (hidden, 16 [+ FACE_DIM], 3, 3)
    n = model.cfg.pose_channels
    pad = conv.new_zeros(conv.shape[0], new.cfg.pose_channels - n, *conv.shape[2:])
    state[key] = torch.cat((conv[:, :n], pad, conv[:, n:]), dim=1)
    new.load_state_dict(state)
    return new.train(model.training)


def add_decoder_motion(model: AnimationModel) -> AnimationModel:
    """A checkpoint from before `decoder_motion` as a model with it: the decoder's
    per-stage motion convolutions start at zero (`TinyAutoencoder.initialize_weights`),
    so it decodes exactly as the old one did; its motion input conv is drawn from a
    fixed seed, so every load of the same checkpoint is the same model."""
    if model.cfg.decoder_motion:
        return model
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        new = AnimationModel(model.cfg.with_(decoder_motion=True))
    new = new.to(model.device, model.dtype)
    missing, unexpected = new.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected and all(".motion_" in k for k in missing), (missing, unexpected)
    return new.train(model.training)


def add_fine_pose(model: AnimationModel, scale: int) -> AnimationModel:
    """`model` reading pose maps drawn at `scale` x the latent size, through a new
    strided stage (`dit.PoseEncoder.fine`) that starts as an average pool, its extra
    planes read at zero weight: on finer maps it computes what `model` computes on
    them averaged down to its own size. The extra planes' weights are drawn from a
    fixed seed, so every upgrade of the same checkpoint is the same model."""
    if scale == model.cfg.pose_scale:
        return model
    if model.cfg.pose_scale != 2:       # (ModelConfig checks `scale` itself)
        raise CheckpointError(f"finer pose maps are added to a model at pose_scale 2 "
                              f"(this one: {model.cfg.pose_scale}); asked for {scale}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        new = AnimationModel(model.cfg.with_(pose_scale=scale))
    new = new.to(model.device, model.dtype)
    state = model.state_dict()
    key = "dit.pose_encoder.conv.weight"
    conv = state[key]
    pad = conv.new_zeros(conv.shape[0], new.state_dict()[key].shape[1] - conv.shape[1],
                         *conv.shape[2:])
    state[key] = torch.cat((conv, pad), dim=1)
    fine = {k: v for k, v in new.state_dict().items() if ".pose_encoder.fine." in k}
    new.load_state_dict({**state, **fine})
    return new.train(model.training)


def deepen(model: AnimationModel, depth: int) -> AnimationModel:
    """`model` with `depth` transformer blocks instead of its own: its blocks keep their
    order, spread evenly (block i at i * depth // old depth), and each new block's adaLN
    modulation starts at zero, so its gates are zero and it is the identity (DiT's
    adaLN-Zero): the same function, with room to learn more. The new blocks' attention
    and MLP weights are drawn from a fixed seed, so every deepening of the same
    checkpoint is the same model (what an exact `--resume` needs)."""
    old = model.cfg.depth
    if depth == old:
        return model
    if depth < old:
        raise CheckpointError(f"a model is deepened, not cut: it has {old} blocks, "
                              f"asked for {depth}")
    new = AnimationModel.random(model.cfg.with_(depth=depth), seed=0, zero_init=True)
    new = new.to(model.device, model.dtype)
    state = {k: v for k, v in new.state_dict().items() if k.startswith("dit.blocks.")}
    for k, v in model.state_dict().items():
        if k.startswith("dit.blocks."):
            i, rest = k[len("dit.blocks."):].split(".", 1)
            state[f"dit.blocks.{int(i) * depth // old}.{rest}"] = v
        else:
            state[k] = v
    new.load_state_dict(state)
    return new.train(model.training)


def upgrade(model: AnimationModel, flags: list[str]) -> AnimationModel:
    """`model` with each of the UPGRADABLE `flags` added (same function)."""
    if "face_maps" in flags:
        model = add_face_maps(model)
    if "decoder_motion" in flags:
        model = add_decoder_motion(model)
    if "face_sketch" in flags:
        model = add_face_sketch(model)
    return model


def arch_diff(a: ModelConfig, b: ModelConfig) -> list[str]:
    da, db = a.to_dict(), b.to_dict()
    return [f"{f}: checkpoint {da[f]} vs preset {db[f]}" for f in ARCH_FIELDS if da[f] != db[f]]


def load_checkpoint(
    path: str | Path,
    preset: str | None = None,
    device: torch.device | str = "cpu",
) -> AnimationModel:
    """Load checkpoint directory `path`. With `preset`, the checkpoint's architecture
    must be that preset's. Its own inference settings are kept: steps and cache-write
    mode belong to how it was trained."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    cfg = read_config(path)
    flags: list[str] = []
    if preset is not None:
        want = get_preset(preset)
        # a checkpoint from before a flag is that preset with it at zero weight; one
        # that gained a flag the preset lacks (a decoder fine-tuned to read the motion)
        # is that preset plus it, and keeps it
        flags = [f for f in UPGRADABLE if getattr(want, f) and not getattr(cfg, f)]
        gained: dict[str, Any] = {f: True for f in UPGRADABLE
                                  if getattr(cfg, f) and not getattr(want, f)}
        if cfg.pose_scale > want.pose_scale:       # one that gained finer pose maps
            gained["pose_scale"] = cfg.pose_scale
        if cfg.depth > want.depth:                  # one that was deepened
            gained["depth"] = cfg.depth
        diff = arch_diff(cfg.with_(**{f: True for f in flags}), want.with_(**gained))
        if diff:
            raise CheckpointError(f"checkpoint {path} does not match preset {preset!r}: "
                                  + "; ".join(diff))
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{path}: {WEIGHTS_FILE} missing")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{weights} is truncated or corrupt ({e}); re-save or re-copy it") \
            from e
    model = AnimationModel(cfg)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    problems = [f"missing {k}" for k in sorted(expected.keys() - got.keys())]
    problems += [f"unexpected {k}" for k in sorted(got.keys() - expected.keys())]
    problems += [f"{k}: shape {got[k]} != {expected[k]}"
                 for k in sorted(expected.keys() & got.keys()) if got[k] != expected[k]]
    if problems:
        shown = "; ".join(problems[:5]) + (f" (+{len(problems) - 5} more)" if len(problems) > 5
                                           else "")
        raise CheckpointError(f"{weights} does not match its config.json: {shown}")
    model.load_state_dict(state)
    return prepare(upgrade(model, flags), device)


def prepare(model: AnimationModel, device: torch.device | str = "cpu",
            dtype: str | None = None) -> AnimationModel:
    """Move to `device` in eval mode, in `dtype` ('float32' | 'bfloat16') if given,
    else in the config's inference dtype where it is bf16 on CUDA, fp32 elsewhere."""
    device = torch.device(device)
    if dtype is None:
        dtype = model.cfg.dtype if device.type == "cuda" else "float32"
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"dtype must be float32 or bfloat16, got {dtype!r}")
    dt = torch.bfloat16 if dtype == "bfloat16" else torch.float32
    return model.to(device=device, dtype=dt).eval().requires_grad_(False)


def init_checkpoint(preset: str, out: str | Path, seed: int = 0) -> Path:
    """A random-init checkpoint of `preset` (for tests and benchmarks before training)."""
    model = AnimationModel.random(get_preset(preset), seed=seed)
    return save_checkpoint(model, out, meta={"preset": preset, "seed": seed,
                                             "trained": False})


def load_model(
    checkpoint: str | Path | None = None,
    preset: str | None = None,
    device: torch.device | str | None = None,
    seed: int = 0,
) -> AnimationModel:
    """What every command uses: `checkpoint` if given; else the shipped default if it
    exists; else a random-init of `preset` (default: `default_preset()`), with a
    warning that the output will be noise-like until trained weights exist."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if checkpoint is not None:
        return load_checkpoint(checkpoint, preset, device)
    if (DEFAULT_CHECKPOINT / CONFIG_FILE).is_file():
        return load_checkpoint(DEFAULT_CHECKPOINT, preset, device)
    name = preset or default_preset()
    log.warning("no checkpoint at %s: using RANDOM weights of preset %r (output is not a "
                "trained animation)", DEFAULT_CHECKPOINT, name)
    return prepare(AnimationModel.random(get_preset(name), seed=seed), device)
