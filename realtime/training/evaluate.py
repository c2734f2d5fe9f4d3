"""`marionette eval`: a checkpoint on held-out characters driven by held-out motion.

The student runs exactly as in a session (`realtime.engine.StreamingEngine`: same
cache, same sampler, same decode); the teacher (a `teacher/` checkpoint beside the
student's, or `--teacher`) runs its many-step guided sampler over the same stream.
Each clip's reference is its character at rest through the clip's own camera, as a
session's reference shares its stream's camera (`studio.shot_references`; figures
from before stop 26 gave a full-body reference to every framing).
Reported (JSON with `--json`):

    psnr, ssim            whole frame, student at its default steps, vs ground truth
    face_psnr, hand_psnr  inside boxes around the head / fingers, found per frame from
                          the condition's pose maps
    figure_psnr,          over the character's own pixels (the studio renders its
    scene_psnr            coverage beside each held-out frame) and over the rest, the
                          background: the scene comes from the reference, the figure
                          from the reference, the motion and the model; whole-frame
                          PSNR is mostly scene
    flicker               mean |(out_t - out_t-1) - (gt_t - gt_t-1)| (0 = the output
                          changes exactly as the ground truth does); flicker_ratio is
                          mean |out_t - out_t-1| / mean |gt_t - gt_t-1|
    drift_db              PSNR of the last `window` frames of one long stream minus that
                          of the first `window` (0 = no drift; negative = degrades).
                          The stream is the held-out clips of one character, cycled,
                          ending with a replay of its first `window` frames, so the two
                          windows show the same motion and differ only in stream age.
                          Default 3000 frames, windows of 100 (frames 0-100 against
                          2900-3000); `--frames` shortens it and the JSON says so.
                          A stream is chaotic (its own output feeds it back; a 1e-6
                          change moves one stream's last window by dB), so the figure
                          is the mean over `--drift-streams` noise seeds (default 3),
                          each stream's own value listed in drift.per_stream_db.
    late_psnr,            PSNR and face PSNR of those last windows (mean over the
    late_face_psnr        streams): what a session looks like minutes in. The
                          clips of `psnr` are the first seconds of fresh streams, so
                          a model that starts well from its reference and falls
                          back within a few hundred frames scores well there and
                          not here (stop 28's student trained further: +0.37 dB on
                          `psnr`, +0.01 here, -0.65 on the face); compare both
    late_figure_psnr,     the same for the figure's own pixels, and its change from the
    figure_drift_db       first window: the whole frame's drift_db can hide a figure
                          that blurs behind a background that sharpens (the stop-27
                          default: drift_db +0.05, figure_drift_db -0.23)
    face_follow_db        face_psnr minus the face PSNR of the same streams (same noise)
                          with the face vector (expression, gaze, head rotation) held
                          at each clip's first frame: > 0 when the rendered face
                          follows the expression, not only the head's place
    hand_follow_db        hand_psnr minus the hand PSNR with the finger maps taken
                          away (hands "unknown"; the arms still say where the hands
                          are): > 0 when the fingers follow their maps
    face_response,        (default split only) how much of the change that the
    expression_response,  face vector (the expression alone, the head still
    hand_response         turning; the fingers) make to the ground truth the output
                          makes too. Each clip is rendered a second time with that
                          part held at its first frame,
                          everything else identical; in the true face (hand) boxes,
                          d_gt = gt - gt_held and d_out = out - out_held (the model
                          run on each clip's own conditions, same noise), and
                          response = <d_out, d_gt> / <d_gt, d_gt>: 1 = the output
                          changes exactly as the truth does, 0 = ignores the part's
                          motion. `response.*.cos` is the cosine of d_out and d_gt.
                          Unlike the follow PSNR it is not swamped by the model's
                          error elsewhere in the box. The teacher's is reported too,
                          and so is the autoencoder's (`ae_response`: decode(encode(.))
                          of both ground truths), the most any model that renders
                          through these latents can reach, and the decoder's alone
                          (`decoder_response`: each clip's own latents, encode(gt),
                          decoded once with its motion and once with the held
                          clip's: what the decoder draws from the motion alone; 0
                          for a decoder that does not read it). A stream's response
                          mixes what the decoder adds with how far two streams of
                          different conditions drift apart; this one does not.
    history               (default split only) how much the student leans on its
                          window: every chunk from frame W on sampled once from a
                          cache holding the reference and the ground truth's own
                          previous W frames (`psnr_true_history`), and once from the
                          reference alone (`psnr_no_history`); and
                          `expression_response_true_history`, the expression
                          response of those chunks when only the chunk's own face
                          vector is held (the window still shows the true faces): 0
                          = the face is taken from the window, not the condition
    student_vs_teacher_db student PSNR minus teacher PSNR (both vs ground truth) at
                          1, 2 and 4 student steps; the teacher at its full step count
    ms_per_frame          median wall time per frame of the engine (sample + decode)

`--alone ae|teacher` instead scores one part of CHECKPOINT on the same clips, with no
stream: the autoencoder's decode(encode(truth)) with `ae_response`, or CHECKPOINT run
as a teacher (the guided many-step sampler) with `teacher_response`; for the
autoencoders and teachers of a new latent grid, trained before any student exists.
With `--split heldout_motion` (or `heldout_character`) those clips and their held
twins are new clips of the dataset's training characters driven by unseen performers
(unseen characters driven by training performers): whether a recipe follows on the
characters it trained on, before asking it of new ones. `ae_response_by_character` and
`teacher_response_by_character` split the responses by character (each with its clip
count), since the pooled one cannot say which characters follow; the full evaluation
writes them too, with the student's (`response_by_character`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from realtime.motion.types import NormalizedMotion
from realtime.training.data import Clip

DRIFT_FRAMES = 3000
DRIFT_WINDOW = 100


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="student checkpoint directory (default: the shipped default)")
    p.add_argument("--teacher", type=Path, default=None,
                   help="teacher checkpoint (default: CHECKPOINT/teacher when present); "
                        "one on finer pose maps (--pose-scale) has the clips drawn at its "
                        "size, the student averaging them down")
    p.add_argument("--data", type=Path, default=None,
                   help="studio dataset directory (required, but with --compare)")
    p.add_argument("--clips", type=int, default=8, help="held-out clips to evaluate")
    p.add_argument("--clip-frames", type=int, default=48, help="frames per held-out clip")
    p.add_argument("--split", default="heldout_both",
                   choices=("heldout_both", "heldout_character", "heldout_motion", "train"),
                   help="heldout_both (default): unseen characters driven by unseen "
                        "performers, rendered on the fly; or one of the dataset's splits "
                        "(with --alone: new clips of that split's kind, rendered on the "
                        "fly, heldout_motion being the training characters)")
    p.add_argument("--frames", type=int, default=DRIFT_FRAMES,
                   help=f"length of the drift stream (default {DRIFT_FRAMES})")
    p.add_argument("--drift-streams", type=int, default=3,
                   help="drift streams (noise seeds) averaged (default 3)")
    p.add_argument("--json", type=Path, default=None, help="write the summary JSON here")
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: as a session runs, see "
                        "engine.configure_torch_threads); ms_per_frame is measured with them")
    p.add_argument("--steps", type=int, default=None,
                   help="the student's denoising steps, 1-4, for every metric but the "
                        "teacher comparison (default: the checkpoint's, as a session "
                        "runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-face-paste", action="store_true",
                   help="no face pasted from the reference (realtime/model/face_paste.py)")
    p.add_argument("--no-hand-paste", action="store_true",
                   help="no hands drawn where the pose's fingers are "
                        "(realtime/model/hand_paste.py)")
    p.add_argument("--uploads", type=int, default=None, metavar="N",
                   help="instead: what finding an uploaded picture's figure is worth, on "
                        "N drawn characters per framing whose figure MediaPipe finds "
                        "(realtime/training/uploads.py); --clip-frames frames each")
    p.add_argument("--alone", choices=("ae", "teacher"), default=None,
                   help="instead: one part of CHECKPOINT on the held-out clips, no "
                        "stream: `ae`, what its autoencoder keeps (PSNR and the "
                        "expression / finger response of decode(encode(truth))); "
                        "`teacher`, CHECKPOINT run as a teacher (its guided many-step "
                        "sampler), PSNR and responses. Minutes: for an autoencoder or "
                        "a teacher trained without a student")
    p.add_argument("--compare", nargs="+", default=None, metavar="[NAME=]EVAL.json[,EVAL.json]",
                   help="instead: print these evaluations' goal metrics side by side as "
                        "a Markdown table, a column each (named NAME or by the file); "
                        "comma-joined files (runs of one recipe, other seeds) make one "
                        "column of mean and range")


@dataclass
class Stream:
    frames: np.ndarray              # (F, H, W, 3) uint8 output
    ms_per_frame: list[float]       # per chunk: wall ms / frames


def _unit(x: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float() / 255.0


def _usable(clip: Clip, chunk: int, limit: int | None = None) -> int:
    n = len(clip.frames) if limit is None else min(limit, len(clip.frames))
    return n - n % chunk


def run_student(model: Any, clip: Clip, steps: int, seed: int, frames: int | None = None,
                ) -> Stream:
    """Stream a clip's conditions through a `StreamingEngine`, as a session would."""
    from realtime.engine import StreamingEngine

    engine = StreamingEngine(model, seed=seed, steps=steps)
    engine.set_reference([r for r in clip.reference], head=clip.head_shape)
    n = _usable(clip, model.cfg.chunk, frames)
    out: list[np.ndarray] = []
    ms: list[float] = []
    for i in range(0, n, model.cfg.chunk):
        conds = [clip.condition(j) for j in range(i, i + model.cfg.chunk)]
        t0 = time.perf_counter()
        got = engine.push(conds)
        ms.append((time.perf_counter() - t0) * 1000 / len(conds))
        out.extend(g.image for g in got)
    return Stream(np.stack(out), ms)


@torch.no_grad()
def run_teacher(model: Any, clip: Clip, steps: int, guidance: float, seed: int,
                frames: int | None = None) -> Stream:
    """The teacher's guided many-step sampler over the same stream, cache written in
    the checkpoint's mode."""
    from realtime.engine import images_to_tensor, tensor_to_images
    from realtime.model.face_paste import paste_faces
    from realtime.model.hand_paste import paste_hands, skin_colour
    from realtime.training.student import new_cache, set_reference
    from realtime.training.teacher import teacher_sample_chunk

    cfg = model.cfg
    dev, dt = model.device, model.dtype
    cache = new_cache(model.dit, 1, dev)
    ref = images_to_tensor([r for r in clip.reference], cfg.resolution, dev, dt)
    set_reference(model.dit, cache, model.ae.encode(ref)[None])
    gen = torch.Generator(dev).manual_seed(seed)
    skin = None if clip.head_shape is None else skin_colour(ref[0], clip.head_shape)
    n = _usable(clip, cfg.chunk, frames)
    out: list[np.ndarray] = []
    ms: list[float] = []
    ls = cfg.latent_size
    for i in range(0, n, cfg.chunk):
        s = slice(i, i + cfg.chunk)
        pose = torch.from_numpy(clip.pose[s])[None].to(dev, dt)
        face = torch.from_numpy(clip.face[s])[None].to(dev, dt)
        pres = torch.from_numpy(clip.presence[s])[None].to(dev, dt)
        t0 = time.perf_counter()
        noise = torch.randn((1, cfg.chunk, cfg.latent_channels, ls, ls), generator=gen,
                            device=dev).to(dt)
        res = teacher_sample_chunk(model.dit, cache, noise, pose, face, pres, steps, guidance,
                                   cfg.time_shift, cfg.cache_write)
        decoded = model.ae.decode_driven(res.latents[0], pose[0], face[0], pres[0])
        if model.face_paste and clip.head_shape is not None and clip.head is not None:
            decoded = paste_faces(decoded, ref[0], clip.head_shape, face[0],
                                  torch.from_numpy(clip.head[s]), pose[0])
        if model.hand_paste and skin is not None and clip.hands is not None:
            decoded = paste_hands(decoded, skin, torch.from_numpy(clip.hands[s]), pres[0])
        out.extend(tensor_to_images(decoded))
        ms.append((time.perf_counter() - t0) * 1000 / cfg.chunk)
    return Stream(np.stack(out), ms)


@torch.no_grad()
def on_true_history(model: Any, clip: Clip, steps: int, seed: int,
                    face_of: Clip | None = None, history: bool = True) -> np.ndarray:
    """Frames [W, F) of `clip` (W = the cache window), each chunk sampled by the runtime
    sampler from a fresh cache holding the reference and, with `history`, the ground
    truth's previous W frames (their clean latents through the cache-write pass at
    t = 0, as the `clean` cache-write mode writes a chunk), with the chunk's own
    conditions, the face vector taken from `face_of` if given. uint8 (F - W, H, W, 3)."""
    from realtime.engine import images_to_tensor, tensor_to_images
    from realtime.model.sampler import sample_chunk
    from realtime.training.student import new_cache, set_reference
    from realtime.training.teacher import write_history

    cfg = model.cfg
    dev, dt, K = model.device, model.dtype, cfg.chunk
    ref = model.ae.encode(images_to_tensor(list(clip.reference), cfg.resolution, dev, dt))
    lat = model.ae.encode(images_to_tensor(list(clip.frames), cfg.resolution, dev, dt))
    faces = (face_of or clip).face
    gen = torch.Generator().manual_seed(seed)

    def cond(s: slice, face: np.ndarray) -> tuple[torch.Tensor, ...]:
        return tuple(torch.from_numpy(a[s])[None].to(dev, dt)
                     for a in (clip.pose, face, clip.presence))

    out: list[np.ndarray] = []
    for start in range(cfg.window, _usable(clip, K), K):
        cache = new_cache(model.dit, 1, dev)
        set_reference(model.dit, cache, ref[None])
        for h in range(start - cfg.window, start, K) if history else ():
            write_history(model.dit, cache, lat[h:h + K][None], 0.0,
                          *cond(slice(h, h + K), clip.face))
        pose, face, pres = cond(slice(start, start + K), faces)
        noise = torch.randn((1, K, cfg.latent_channels, cfg.latent_size, cfg.latent_size),
                            generator=gen).to(dev, dt)
        res = sample_chunk(model.dit, cache, noise, pose, face, pres, steps, cfg.time_shift,
                           cfg.cache_write)
        out.extend(tensor_to_images(model.ae.decode_driven(res.latents[0], pose[0], face[0],
                                                           pres[0])))
    return np.stack(out)


def history_reliance(model: Any, clips: list[Clip], held: list[Clip], steps: int,
                     seed: int) -> dict[str, Any]:
    """The `history` entry of the module docstring. `held`: the clips with their
    expression held (`hold_expression_only`), frame for frame."""
    from realtime.training.metrics import FACE_CHANNELS

    W = model.cfg.window

    def tail(c: Clip) -> Clip:
        return c.frame_range(slice(W, None))

    true = [on_true_history(model, c, steps, seed + i) for i, c in enumerate(clips)]
    alone = [on_true_history(model, c, steps, seed + i, history=False)
             for i, c in enumerate(clips)]
    # the held clip's face vector with the TRUE clip's window and pose: only the
    # chunk's own expression differs
    held_out = [on_true_history(model, c, steps, seed + i, face_of=h)
                for i, (c, h) in enumerate(zip(clips, held, strict=True))]
    resp = response(true, held_out, [tail(c) for c in clips], [tail(h) for h in held],
                    FACE_CHANNELS)
    return {"psnr_true_history": _mean([frame_metrics(o, tail(c))
                                        for o, c in zip(true, clips, strict=True)])["psnr"],
            "psnr_no_history": _mean([frame_metrics(o, tail(c))
                                      for o, c in zip(alone, clips, strict=True)])["psnr"],
            "expression_response_true_history": resp["gain"], "response": resp,
            "window": W}


def frame_metrics(out: np.ndarray, clip: Clip, start: int = 0) -> dict[str, float]:
    """psnr, ssim, face/hand psnr, flicker of output frames against clip frames
    [start, start + len(out))."""
    from realtime.training import metrics as M

    n = len(out)
    pred, gt = _unit(out), _unit(clip.frames[start:start + n])
    maps = torch.from_numpy(clip.pose[start:start + n])
    size = gt.shape[-1]
    fl, ratio = M.flicker(pred, gt) if n > 1 else (float("nan"), float("nan"))
    return {
        "psnr": M.psnr(pred, gt), "ssim": M.ssim(pred, gt),
        "face_psnr": M.region_psnr(pred, gt, M.boxes_from_maps(maps, M.FACE_CHANNELS, size)),
        "hand_psnr": M.region_psnr(pred, gt, M.boxes_from_maps(maps, M.HAND_CHANNELS, size)),
        "flicker": fl, "flicker_ratio": ratio,
        **figure_and_scene_psnr(pred, gt, None if clip.figure is None
                                else clip.figure[start:start + n]),
    }


def figure_and_scene_psnr(pred: torch.Tensor, gt: torch.Tensor, figure: np.ndarray | None,
                          ) -> dict[str, float]:
    """PSNR over the character's pixels (coverage >= half) and over the rest; NaN
    where the coverage is unknown or a part is empty."""
    from realtime.training import metrics as M

    if figure is None:
        return {"figure_psnr": float("nan"), "scene_psnr": float("nan")}
    inside = torch.from_numpy(figure >= 128)
    return {"figure_psnr": M.masked_psnr(pred, gt, inside),
            "scene_psnr": M.masked_psnr(pred, gt, ~inside)}


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    """Per-key mean over rows, ignoring NaN (a clip without hands has no hand_psnr)."""
    keys = rows[0].keys()
    out = {}
    for k in keys:
        vals = [r[k] for r in rows if np.isfinite(r[k])]
        out[k] = float(np.mean(vals)) if vals else float("nan")
    return out


def without_expression(clip: Clip) -> Clip:
    """The clip with its face vector held at the first frame (the body still moves)."""
    return dataclasses.replace(clip, face=np.repeat(clip.face[:1], len(clip.face), 0))


def without_fingers(clip: Clip) -> Clip:
    """The clip with its finger maps zeroed and both hands marked unknown."""
    from realtime.motion.types import PARTS
    from realtime.training.metrics import HAND_CHANNELS

    pose, presence = clip.pose.copy(), clip.presence.copy()
    pose[:, list(HAND_CHANNELS)] = 0.0
    presence[:, [PARTS.index("left_hand"), PARTS.index("right_hand")]] = 0.0
    return dataclasses.replace(clip, pose=pose, presence=presence)


HEAD_ROTATION = ("yaw", "pitch", "roll")


def head_rotation_mask() -> np.ndarray:
    """(FACE_DIM,) bool: True for the face vector's head-rotation features, False for
    the expression (eyes, gaze, brows, mouth, jaw)."""
    from realtime.motion.types import FACE_FEATURES

    return np.array([f in HEAD_ROTATION for f in FACE_FEATURES])


def hold_expression(motion: list[NormalizedMotion]) -> list[NormalizedMotion]:
    """The motion with its whole face vector (expression, gaze, head rotation) held at
    the first frame's."""
    return [dataclasses.replace(m, face=motion[0].face.copy()) for m in motion]


def hold_expression_only(motion: list[NormalizedMotion]) -> list[NormalizedMotion]:
    """The motion with its expression (eyes, gaze, brows, mouth, jaw) held at the
    first frame's; the head still turns as it did."""
    keep = head_rotation_mask()
    return [dataclasses.replace(m, face=np.where(keep, m.face, motion[0].face)
                                .astype(m.face.dtype)) for m in motion]


def hold_fingers(motion: list[NormalizedMotion]) -> list[NormalizedMotion]:
    """The motion with each hand's bone directions held at the first frame that has
    that hand (a hand absent in a frame stays absent)."""
    left = next((m.left_hand_dirs for m in motion if m.left_hand_dirs is not None), None)
    right = next((m.right_hand_dirs for m in motion if m.right_hand_dirs is not None), None)
    return [dataclasses.replace(
                m, left_hand_dirs=None if m.left_hand_dirs is None or left is None
                else left.copy(),
                right_hand_dirs=None if m.right_hand_dirs is None or right is None
                else right.copy())
            for m in motion]


def response(outs: list[np.ndarray], held_outs: list[np.ndarray], clips: list[Clip],
             held: list[Clip], channels: tuple[int, ...]) -> dict[str, float]:
    """{'gain': <d_out, d_gt> / <d_gt, d_gt>, 'cos', 'gt_rms', 'out_rms'} over the part's
    boxes (from the true clips' maps) of every clip; see the module docstring."""
    from realtime.training import metrics as M

    dot = gg = oo = 0.0
    count = 0
    for out, out_h, clip, clip_h in zip(outs, held_outs, clips, held, strict=True):
        n = len(out)
        d_out = _unit(out) - _unit(out_h)
        d_gt = _unit(clip.frames[:n]) - _unit(clip_h.frames[:n])
        boxes = M.boxes_from_maps(torch.from_numpy(clip.pose[:n]), channels, d_gt.shape[-1])
        for t, b in enumerate(boxes):
            if b is None:
                continue
            y0, y1, x0, x1 = b
            o, g = d_out[t, :, y0:y1, x0:x1].flatten(), d_gt[t, :, y0:y1, x0:x1].flatten()
            dot += float(o @ g)
            gg += float(g @ g)
            oo += float(o @ o)
            count += g.numel()
    if count == 0 or gg == 0.0:
        return {"gain": float("nan"), "cos": float("nan"), "gt_rms": 0.0, "out_rms": 0.0}
    return {"gain": dot / gg, "cos": dot / max(1e-12, (gg * oo) ** 0.5),
            "gt_rms": (gg / count) ** 0.5, "out_rms": (oo / count) ** 0.5}


@torch.no_grad()
def reconstruct(model: Any, clip: Clip, motion_of: Clip | None = None) -> np.ndarray:
    """The clip's frames through the model's autoencoder, uint8 (N, H, W, 3): decoded
    as the engine decodes, with the clip's motion (or `motion_of`'s, frame for frame)."""
    from realtime.engine import images_to_tensor, tensor_to_images

    dev, dt = model.device, model.dtype
    x = images_to_tensor(list(clip.frames), model.cfg.resolution, dev, dt)
    m = clip if motion_of is None else motion_of
    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).to(dev, dt)
    return tensor_to_images(model.ae.decode_driven(model.ae.encode(x), t(m.pose),
                                                   t(m.face), t(m.presence)))


def _parts(held: dict[str, list[Clip]]) -> dict[str, tuple[int, ...]]:
    """Each held part -> the channels whose boxes its response is measured in."""
    from realtime.training.metrics import FACE_CHANNELS, HAND_CHANNELS

    return {part: HAND_CHANNELS if part == "hand" else FACE_CHANNELS for part in held}


def responses(outs: list[np.ndarray], held_outs: dict[str, list[np.ndarray]],
              clips: list[Clip], held: dict[str, list[Clip]],
              ) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, dict[str, float]]]]:
    """Each held part's `response` pooled over the clips, and split `by_character`."""
    parts = _parts(held)
    pooled = {p: response(outs, held_outs[p], clips, held[p], chans)
              for p, chans in parts.items()}
    split = {p: by_character(outs, held_outs[p], clips, held[p], chans)
             for p, chans in parts.items()}
    return pooled, split


def alone(model: Any, part: str, clips: list[Clip], held: dict[str, list[Clip]], seed: int,
          teacher_steps: int = 16, guidance: float = 2.0) -> dict[str, Any]:
    """`--alone`: the autoencoder's reconstructions (`ae`) or the model's guided
    many-step sampler (`teacher`) on the clips, their frame metrics and responses."""
    if part == "ae":
        outs = [reconstruct(model, c) for c in clips]
        held_outs = {p: [reconstruct(model, c) for c in held[p]] for p in held}
    else:
        outs = [run_teacher(model, c, teacher_steps, guidance, seed + i).frames
                for i, c in enumerate(clips)]
        held_outs = {p: [run_teacher(model, c, teacher_steps, guidance, seed + i).frames
                         for i, c in enumerate(held[p])] for p in held}
    pooled, split = responses(outs, held_outs, clips, held)
    metrics = _mean([frame_metrics(o, c) for o, c in zip(outs, clips, strict=True)])
    if part == "ae":
        return {**metrics, "ae_response": pooled, "ae_response_by_character": split}
    return {**metrics, "teacher_steps": teacher_steps, "guidance": guidance,
            "teacher_response": pooled, "teacher_response_by_character": split}


def by_character(outs: list[np.ndarray], held_outs: list[np.ndarray], clips: list[Clip],
                 held: list[Clip], channels: tuple[int, ...]) -> dict[str, dict[str, float]]:
    """`response` over each character's clips alone, with how many clips it has: which
    characters follow, where the pooled response mixes them (stop 44)."""
    groups: dict[str, list[tuple[np.ndarray, np.ndarray, Clip, Clip]]] = {}
    for row in zip(outs, held_outs, clips, held, strict=True):
        groups.setdefault(row[2].character, []).append(row)
    out: dict[str, dict[str, float]] = {}
    for name, rows in sorted(groups.items()):
        out[name] = {"clips": len(rows),
                     **response([r[0] for r in rows], [r[1] for r in rows],
                                [r[2] for r in rows], [r[3] for r in rows], channels)}
    return out


def follow(model: Any, clips: list[Clip], rows: list[dict[str, float]], steps: int,
           seed: int) -> dict[str, Any]:
    """Do face and fingers follow their own motion? Region PSNR of the streams in `rows`
    against the same streams (same noise) with that part's motion taken away, scored
    in the true motion's regions."""
    face, hand = [], []
    for i, clip in enumerate(clips):
        frozen = run_student(model, without_expression(clip), steps, seed + i)
        fingerless = run_student(model, without_fingers(clip), steps, seed + i)
        face.append(frame_metrics(frozen.frames, clip))
        hand.append(frame_metrics(fingerless.frames, clip))
    true = _mean(rows)
    face_frozen, hand_unknown = _mean(face)["face_psnr"], _mean(hand)["hand_psnr"]
    return {"face_follow_db": true["face_psnr"] - face_frozen,
            "hand_follow_db": true["hand_psnr"] - hand_unknown,
            "follow": {"face_psnr_expression_frozen": face_frozen,
                       "hand_psnr_fingers_unknown": hand_unknown,
                       "note": "region PSNR with the true motion minus with that part's "
                               "motion taken away; same clips, same noise"}}


def drift_clip(clips: list[Clip], frames: int, window: int) -> Clip:
    """One long stream: the clips cycled for `frames - window` frames, then a replay of
    the first `window` frames, so first and last windows show the same motion."""
    def cat(name: str, n: int) -> np.ndarray:
        parts, total = [], 0
        while total < n:
            for c in clips:
                parts.append(getattr(c, name))
                total += len(parts[-1])
        return np.concatenate(parts)[:n]

    body = frames - window
    fields = {}
    names = ["frames", "pose", "face", "presence"]
    names += [n for n in ("figure", "head", "hands")
              if all(getattr(c, n) is not None for c in clips)]
    for name in names:
        seq = cat(name, body)
        fields[name] = np.concatenate((seq, cat(name, window)))
    c0 = clips[0]
    return Clip(c0.character, "drift", c0.reference, fields["frames"], fields["pose"],
                fields["face"], fields["presence"], fields.get("figure"), fields.get("head"),
                c0.head_shape, fields.get("hands"))


def drift_window(frames: int, chunk: int) -> tuple[int, int]:
    """(stream frames, window) for a drift stream of about `frames` frames: windows of
    100 frames, or a quarter of a shorter stream, whole chunks."""
    window = min(DRIFT_WINDOW, max(chunk, (frames // 4) // chunk * chunk))
    return max(2 * window, frames - frames % chunk), window


def evaluate(
    model: Any, teacher: Any | None, clips: list[Clip], long: Clip, window: int,
    seed: int = 0, teacher_steps: int = 16, guidance: float = 2.0, drift_streams: int = 3,
    held: dict[str, list[Clip]] | None = None, steps: int | None = None,
) -> dict[str, Any]:
    """All metrics (see the module docstring) as a JSON-ready dict. `long` is the drift
    stream (`drift_clip`), compared over its first and last `window` frames. `held`:
    {'face': clips with the expression held, 'hand': with the fingers held} (the same
    clips re-rendered), for the response metrics; None skips them. `steps`: the
    student's denoising steps (default: the checkpoint's)."""
    cfg = model.cfg
    steps = steps or cfg.steps
    rows, ms, outs = [], [], []
    for i, clip in enumerate(clips):
        s = run_student(model, clip, steps, seed + i)
        rows.append(frame_metrics(s.frames, clip))
        outs.append(s.frames)
        ms.extend(s.ms_per_frame[1:] or s.ms_per_frame)   # first chunk: warm-up
    summary: dict[str, Any] = {**_mean(rows), "steps": steps, "clips": len(clips),
                               "frames_per_clip": _usable(clips[0], cfg.chunk),
                               "reference": "shot"}    # see the module docstring
    summary.update(follow(model, clips, rows, steps, seed))
    parts = _parts(held or {})
    if held is not None:
        resp, summary["response_by_character"] = responses(
            outs, {p: [run_student(model, c, steps, seed + i).frames
                       for i, c in enumerate(held[p])] for p in parts}, clips, held)
        summary["response"] = resp
        summary.update({f"{p}_response": r["gain"] for p, r in resp.items()})
        if "expression" in held:
            summary["history"] = history_reliance(model, clips, held["expression"], steps,
                                                  seed)
        own = [reconstruct(model, c) for c in clips]
        summary["ae_response"], summary["ae_response_by_character"] = responses(
            own, {p: [reconstruct(model, c) for c in held[p]] for p in parts}, clips, held)
        summary["decoder_response"] = {
            part: response(own, [reconstruct(model, c, motion_of=h)
                                 for c, h in zip(clips, held[part], strict=True)],
                           clips, held[part], chans)
            for part, chans in parts.items()}

    # drift: long streams (one per noise seed), the same motion in first and last window
    frames = _usable(long, cfg.chunk)
    firsts, lasts = [], []
    for r in range(drift_streams):
        s = run_student(model, long, steps, seed + 1000 * r)
        firsts.append(frame_metrics(s.frames[:window], long, 0))
        lasts.append(frame_metrics(s.frames[-window:], long, frames - window))
    first, last = _mean(firsts), _mean(lasts)
    summary["drift_db"] = last["psnr"] - first["psnr"]
    summary["late_psnr"] = last["psnr"]
    summary["late_face_psnr"] = last["face_psnr"]
    summary["late_figure_psnr"] = last["figure_psnr"]
    summary["figure_drift_db"] = last["figure_psnr"] - first["figure_psnr"]
    summary["drift"] = {"frames": frames, "window": window, "streams": drift_streams,
                        "first": first, "last": last,
                        "per_stream_db": [b["psnr"] - a["psnr"]
                                          for a, b in zip(firsts, lasts, strict=True)],
                        "shortened": frames < DRIFT_FRAMES,
                        "note": (f"windows of {window} frames: 0-{window} against "
                                 f"{frames - window}-{frames}, mean of {drift_streams} "
                                 "streams (noise seeds)")}

    # teacher (full steps, guided) vs student at 1, 2, 4 steps, same clips and seeds
    if teacher is not None:
        t_rows, t_outs = [], []
        by_steps: dict[str, list[dict[str, float]]] = {"1": [], "2": [], "4": []}
        for i, clip in enumerate(clips):
            t = run_teacher(teacher, clip, teacher_steps, guidance, seed + i)
            t_rows.append(frame_metrics(t.frames, clip))
            t_outs.append(t.frames)
            for k in by_steps:
                st = run_student(model, clip, int(k), seed + i)
                by_steps[k].append(frame_metrics(st.frames, clip))
        t_psnr = _mean(t_rows)["psnr"]
        summary["teacher_metrics"] = {"steps": teacher_steps, "guidance": guidance, **_mean(t_rows)}
        summary["student_psnr_by_steps"] = {k: _mean(v)["psnr"] for k, v in by_steps.items()}
        summary["student_vs_teacher_db"] = {k: _mean(v)["psnr"] - t_psnr
                                            for k, v in by_steps.items()}
        if held is not None:
            summary["teacher_response"], summary["teacher_response_by_character"] = \
                responses(t_outs, {p: [run_teacher(teacher, c, teacher_steps, guidance,
                                                   seed + i).frames
                                       for i, c in enumerate(held[p])] for p in parts},
                          clips, held)
    else:
        summary["student_vs_teacher_db"] = None
    summary["ms_per_frame"] = float(np.median(ms))
    summary["ms_per_frame_p90"] = float(np.percentile(ms, 90))
    summary["device"] = f"{model.device} ({platform.processor() or platform.machine()}, " \
                        f"{torch.get_num_threads()} threads)"
    return summary


def _finite_or_null(x: Any) -> Any:
    """NaN/inf (e.g. hand_psnr over frames without hands) -> null: strict JSON."""
    if isinstance(x, float) and not np.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite_or_null(v) for k, v in x.items()}
    return x


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except (FileNotFoundError, ValueError) as e:        # a bad checkpoint or dataset
        print(f"marionette eval: {e}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from realtime.engine import configure_torch_threads
    from realtime.model.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint, load_model, read_meta
    from realtime.training.studio import HELD_KINDS, heldout_clips, read_split

    if args.compare:
        from realtime.training.compare import compare

        print(compare(args.compare))
        return 0
    if args.data is None:
        raise ValueError("--data DIR is required: the studio dataset to evaluate on "
                         "(`marionette avatar dataset --out DIR`)")
    configure_torch_threads(args.threads)
    ckpt = args.checkpoint or DEFAULT_CHECKPOINT
    model = load_model(args.checkpoint, device=args.device)
    model.face_paste = not args.no_face_paste
    model.hand_paste = not args.no_hand_paste
    if args.steps is not None:
        model.cfg.with_(steps=args.steps)          # ValueError outside what it runs at
    teacher_dir = args.teacher or (ckpt / "teacher")
    teacher = None
    info: dict[str, Any] = {}
    if (teacher_dir / "config.json").is_file():
        teacher = load_checkpoint(teacher_dir, device=model.device)
        teacher.face_paste = model.face_paste       # compared as the student is drawn
        teacher.hand_paste = model.hand_paste
        info = read_meta(teacher_dir)
    cfg = model.cfg
    # the clips both models run on are drawn at the finer of their pose sizes: a model
    # averages finer maps down to its own (dit.PoseEncoder) and refuses coarser ones
    shared = cfg if teacher is None or teacher.cfg.pose_scale <= cfg.pose_scale \
        else cfg.with_(pose_scale=teacher.cfg.pose_scale)
    clip_frames = args.clip_frames - args.clip_frames % cfg.chunk
    if args.uploads is not None:
        from realtime.training.uploads import upload_alignment

        result = {"checkpoint": str(ckpt), "data": str(args.data), "steps": cfg.steps,
                  "clip_frames": clip_frames,
                  "uploads": upload_alignment(model, args.data, args.uploads, clip_frames,
                                              args.seed)}
        return _report(result, args.json)
    held = None
    # fresh clips with held twins: the streamed evaluation's own, or any held-out kind
    # for `--alone` (new clips of the training characters: does a teacher follow there?)
    if args.split == "heldout_both" or (args.alone is not None and args.split in HELD_KINDS):
        def draw(edit: Any = None) -> list[Clip]:
            return heldout_clips(args.data, shared, args.clips, clip_frames, edit, args.split)

        clips = draw()
        edits = {"face": hold_expression, "expression": hold_expression_only,
                 "hand": hold_fingers}
        held = {p: draw(e) for p, e in edits.items() if args.alone is None or p != "face"}
    else:
        clips = read_split(args.data, args.split, shared, limit=args.clips)
        clips = [c.frame_range(slice(clip_frames)) for c in clips]
    if args.alone is not None:
        if held is None:
            raise ValueError(f"--alone measures the responses on fresh clips with held "
                             f"twins: --split one of {', '.join(sorted(HELD_KINDS))}")
        meta = read_meta(ckpt)
        result = {"checkpoint": str(ckpt), "data": str(args.data), "alone": args.alone,
                  "split": args.split, "clips": len(clips), "frames_per_clip": clip_frames,
                  **alone(model, args.alone, clips,
                          {p: held[p] for p in ("expression", "hand")}, args.seed,
                          int(meta.get("teacher_steps", 16)), float(meta.get("guidance", 2.0)))}
        return _report(result, args.json)
    frames, window = drift_window(args.frames, cfg.chunk)
    long = drift_clip(heldout_clips(args.data, cfg, 1, frames - window), frames, window)
    summary = evaluate(model, teacher, clips, long, window, args.seed,
                       int(info.get("teacher_steps", 16)), float(info.get("guidance", 2.0)),
                       max(1, args.drift_streams), held, args.steps)
    summary = {"checkpoint": str(ckpt),
               "teacher_checkpoint": str(teacher_dir) if teacher else None,
               "data": str(args.data),
               "split": args.split,
               "pose_maps_px": shared.pose_size,       # the student's own on the drift stream
               "face_paste": model.face_paste,
               "hand_paste": model.hand_paste,
               "heldout": {"heldout_both": "characters and performers held out of training",
                           "heldout_character": "unseen characters, training motion sources",
                           "heldout_motion": "training characters, unseen motion sources",
                           "train": "training clips (not held out)"}[args.split],
               **summary}
    return _report(summary, args.json)


def _report(summary: dict[str, Any], path: Path | None) -> int:
    text = json.dumps(_finite_or_null(summary), indent=2)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    print(text)
    return 0
