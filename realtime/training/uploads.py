"""`marionette eval --uploads N`: what finding an uploaded picture's figure is worth.

A session given an uploaded picture retargets the performer onto the skeleton of
the figure measured in it (`realtime.motion.reference`), or onto the default
standing adult where none is found, as every upload did before. Drawn characters
are the one kind of upload whose truth is known: the studio draws a character at
rest through a camera (the "upload") and the same character performing through the
same camera (the truth). For characters of a seed no checkpoint has trained on,
driven by the dataset's held-out performers and shot in each framing, every clip is
streamed once per variant below, with the same reference and noise, retargeted onto

    default    the default adult (what an upload got before, and still gets when no
               figure is found)
    measured   the skeleton measured in the picture, MediaPipe's joints read as the
               studio draws them, or the studio's median figure around the face
               where no body is found (what a session uses)
    seen       the skeleton MediaPipe sees, unconverted (`ReferenceConfig.as_drawn`;
               the same as measured where it came from the face)
    true       the character's own skeleton through that camera (what a built-in
               character gets: the bound)
    pasted     measured, with the face and hand pastes placed by a head fitted to the
               picture's eyes, nose and mouth (`face_paste.HeadShape.of_upload`; as
               measured where Face Mesh finds no face or the head does not fit)
    hands      the same with the hand paste alone (what a session does since stop 50)

and scored against the truth as `marionette eval` scores (whole frame, the figure's
own pixels, the face boxes of the true pose). Only pictures where a figure is found
count (`found_by`: from the body, or from the face alone where no body is found);
`tried` says how many characters were drawn to find `found`. Pictures are drawn at 256 px, as an
upload would be larger than the model's frame; the streams run at the model's size.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

CHARACTER_SEED = 7              # a studio seed no shipped checkpoint trained on
UPLOAD_SIZE = 256
FRAMINGS = ("full", "upper", "face")
VARIANTS = ("default", "measured", "seen", "true", "pasted", "hands")


def upload_alignment(model: Any, data: Path, n: int, frames: int, seed: int = 0,
                     max_tries: int = 400) -> dict[str, Any]:
    """Per framing, up to `n` characters whose figure is found: mean metrics of
    the three skeletons (module docstring) and the per-clip rows."""
    from realtime.avatars.dataset import ClipPlan, _Tracks, character, make_sample, plan
    from realtime.avatars.render import framing_for, render_reference
    from realtime.model.face_paste import HeadShape
    from realtime.motion.reference import ReferenceConfig, measure_reference, measure_upload
    from realtime.motion.retarget import default_skeleton
    from realtime.training.evaluate import frame_metrics, run_student
    from realtime.training.studio import dataset_config, sample_to_clip

    base = dataset_config(data)
    sources = sorted({p.source for p in plan(base, []) if p.split == "heldout_motion"})
    if not sources:
        raise ValueError(f"{data}: the dataset holds out no motion sources")
    cfg = model.cfg
    out: dict[str, Any] = {}
    for framing in FRAMINGS:
        conf = dataclasses.replace(base, seed=CHARACTER_SEED, resolution=UPLOAD_SIZE,
                                   frames=frames, framings=(framing,))
        rows: list[dict[str, Any]] = []
        tried = 0
        for k in range(max_tries):
            if len(rows) >= n:
                break
            tried += 1
            char = character(conf, k)
            # cheap first look (no clip rendered) through the framing's own camera
            if measure_reference(render_reference(char, UPLOAD_SIZE,
                                                  framing=framing_for(char, framing))) is None:
                continue
            p = ClipPlan(30_000_000 + k, "uploads", k, sources[k % len(sources)])
            sample: dict[str, Any] = dict(make_sample(p, conf, _Tracks(None), figure=True))
            sample["meta"] = {"character": f"upload-char{k}", "source": p.source}
            measured, features = measure_upload(np.asarray(sample["reference_shot"][0]))
            if measured is None:
                continue
            head = None if features is None else HeadShape.of_upload(features, measured)
            truth = sample_to_clip(sample, cfg)
            picture = np.asarray(sample["reference_shot"][0])
            seen = measure_reference(picture, ReferenceConfig(as_drawn=False))
            by_body = measure_reference(picture, ReferenceConfig(face=False)) is not None
            row: dict[str, Any] = {"character": k, "build": char.build,
                                   "found_by": "body" if by_body else "face",
                                   "head": head is not None}
            for name, skeleton in (("default", default_skeleton()), ("measured", measured),
                                   ("seen", seen), ("true", None), ("pasted", measured),
                                   ("hands", measured)):
                clip = truth if skeleton is None else sample_to_clip(
                    _on_skeleton(sample, skeleton), cfg)
                if name in ("pasted", "hands"):
                    clip = dataclasses.replace(clip, head_shape=head)
                face_paste = model.face_paste
                model.face_paste = face_paste and name != "hands"
                stream = run_student(model, clip, cfg.steps, seed).frames
                model.face_paste = face_paste
                m = frame_metrics(stream, truth)
                row[name] = {key: m[key] for key in ("psnr", "figure_psnr", "face_psnr",
                                                     "hand_psnr")}
            rows.append(row)
        out[framing] = {"tried": tried, "found": len(rows), **_means(rows), "clips": rows}
    return out


def _on_skeleton(sample: dict[str, Any], skeleton: Any) -> dict[str, Any]:
    """The sample with its conditions to be retargeted onto `skeleton`, already in
    the picture's canvas units (an identity camera)."""
    return {**sample, "skeleton_body": skeleton.body, "skeleton_hand": skeleton.hand,
            "rest_root": np.asarray(skeleton.rest_root), "framing": np.array([0.5, 0.5, 1.0])}


def _means(rows: list[dict[str, Any]]) -> dict[str, Any]:
    if not rows:
        return {}
    means = {name: {key: float(np.nanmean([r[name][key] for r in rows]))
                    for key in rows[0][name]} for name in VARIANTS}
    by = {how: sum(r["found_by"] == how for r in rows) for how in ("body", "face")}
    return {**means, "found_by": by, "heads": sum(r["head"] for r in rows),
            "measured_minus_default_db": {
                key: means["measured"][key] - means["default"][key] for key in means["default"]},
            "pasted_minus_measured_db": {
                key: means["pasted"][key] - means["measured"][key] for key in means["measured"]},
            "hands_minus_measured_db": {
                key: means["hands"][key] - means["measured"][key] for key in means["measured"]}}


def fit_ratios(seed: int = 3, characters: int = 150) -> dict[str, Any]:
    """The constants of `realtime.motion.reference` again, from the studio's own
    drawings: the gallery's characters and `characters` of studio `seed`, each drawn
    in every framing. `STUDIO_OVER_SEEN`: per bone, the median of the studio's length
    over the one MediaPipe sees, over every figure whose body is found (MediaPipe's
    own skeleton, `ReferenceConfig(as_drawn=False, face=False)`). `FACE_FIGURES`:
    per kind of face (`big_head` or not), the medians of the studio's bones and of
    its root's offset from the nose tip, in units of the eye span, over every face
    Face Mesh finds. With the counts."""
    from realtime.avatars import gallery
    from realtime.avatars.dataset import DatasetConfig, character
    from realtime.avatars.render import framing_for, render_reference
    from realtime.motion.reference import (
        ReferenceConfig,
        big_head,
        face_points,
        face_size,
        measure_reference,
    )

    conf = DatasetConfig(seed=seed)
    chars = [gallery.get(n) for n in gallery.names()]
    chars += [character(conf, k) for k in range(characters)]
    ratios: list[np.ndarray] = []
    faces: dict[str, list[tuple[np.ndarray, ...]]] = {"big head": [], "other": []}
    for char in chars:
        for framing in FRAMINGS:
            cam = framing_for(char, framing)
            truth = char.skeleton.through(cam.center, cam.zoom)
            image = render_reference(char, UPLOAD_SIZE, framing=cam)
            seen = measure_reference(image, ReferenceConfig(as_drawn=False, face=False))
            if seen is not None:
                ratios.append(truth.body / seen.body)
            points = face_points(image)
            if points is not None:
                span, nose = face_size(points)
                faces["big head" if big_head(points) else "other"].append(
                    (truth.body / span, truth.hand / span,
                     (np.asarray(truth.rest_root) - nose) / span))

    def med(rows: list[np.ndarray]) -> list[float]:
        return [float(x) for x in np.round(np.median(np.array(rows), axis=0), 3)]

    return {"bodies": len(ratios), "STUDIO_OVER_SEEN": med(ratios),
            "faces": {kind: len(rows) for kind, rows in faces.items()},
            "FACE_FIGURES": {kind: {"root": med([r[2] for r in rows]),
                                    "body": med([r[0] for r in rows]),
                                    "hand": med([r[1] for r in rows])}
                             for kind, rows in faces.items()}}


def strip(photos: list[Path], out: Path, frames: int = 36, size: int = 192) -> None:
    """A picture of what the measurement changes, one row per photo: the upload as
    the engine sees it (padded square); the pose a session asks the model to draw
    over it, on the default adult and on the measured skeleton; and the model's
    frame for each (the shipped checkpoint, the demo performer, frame `frames`)."""
    from PIL import Image

    from realtime.avatars.motion import ProceduralMotion
    from realtime.engine import pad_square
    from realtime.frames import Reference
    from realtime.model.checkpoint import load_model
    from realtime.motion.condition import render_condition
    from realtime.motion.retarget import retarget
    from realtime.pipeline import AnimationPipeline

    model = load_model(None)
    performer = ProceduralMotion(0)
    motions = [performer.frame(i) for i in range(frames)]
    rows = []
    for photo in photos:
        image = np.asarray(Image.open(photo).convert("RGB"))
        square = np.asarray(Image.fromarray(pad_square(image)).resize((size, size)))
        cells = [square]
        outputs = []
        pipe = AnimationPipeline(model)
        measured = pipe.prepare_reference(image)
        for reference in (Reference(image), measured):
            pipe.set_reference_image(reference)
            pipe.engine.reset()
            got = [f.image for i, m in enumerate(motions)
                   for f in pipe.process_motion(m, i, i / 30)]
            pose = retarget(motions[-1], pipe.skeleton)
            maps = render_condition(pose, size).pose_maps.max(axis=0)[..., None]   # (S, S, 1)
            cells.append((square * (1 - 0.8 * maps) + 255 * 0.8 * maps).astype(np.uint8))
            outputs.append(np.asarray(Image.fromarray(got[-1]).resize((size, size))))
        rows.append(np.concatenate(cells + outputs, axis=1))
        pipe.close()
    Image.fromarray(np.concatenate(rows, axis=0)).save(out)


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--fit"]:
        for name, value in fit_ratios().items():
            print(name, "=", value)
    elif sys.argv[1:2] == ["--strip"] and len(sys.argv) > 3:
        strip([Path(a) for a in sys.argv[3:]], Path(sys.argv[2]))
    else:
        sys.exit("usage: python -m realtime.training.uploads --fit | --strip OUT.png PHOTO...")
