"""`marionette animate`: a motion track in, a video and a JSON summary out; clear
exit-2 errors for bad inputs. Tiny random-init checkpoint."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from realtime.cli import main
from realtime.model.checkpoint import init_checkpoint
from realtime.motion.track import save_track
from realtime.motion.types import MotionFrame


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    """The tiny model gains nothing from more threads; spinning ones slow a shared CPU."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("animate")
    ckpt = init_checkpoint("tiny", d / "tiny")
    rng = np.random.default_rng(0)
    frames = []
    for i in range(7):                                   # odd: ends mid-chunk
        body = np.zeros((33, 4), np.float32)
        body[:, :2] = 0.5 + 0.1 * rng.standard_normal((33, 2))
        body[:, 3] = 1.0
        frames.append(MotionFrame(i, i / 25, (320, 240), body, None, None, None,
                                  confidence={"body": 1.0}))
    track = d / "track.npz"
    save_track(track, frames, meta={"fps": 25.0})
    ref = d / "ref.png"
    from PIL import Image

    Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(ref)
    return {"ckpt": ckpt, "track": track, "ref": ref, "dir": d}


def _animate(inputs: dict[str, Path], *extra: str) -> int:
    return main(["animate", "--driving", str(inputs["track"]), "--checkpoint",
                 str(inputs["ckpt"]), "--quiet", *extra])


def test_track_to_video_and_summary(inputs: dict[str, Path]) -> None:
    import av

    out, js = inputs["dir"] / "out.mp4", inputs["dir"] / "out.json"
    assert _animate(inputs, "--reference", str(inputs["ref"]), "--out", str(out),
                    "--json", str(js), "--steps", "1") == 0
    summary = json.loads(js.read_text())
    assert summary["frames"] == 7 and summary["fps"] == 25.0 and summary["steps"] == 1
    assert summary["character"] is None and summary["reference_figure"] is False   # noise
    for stage in ("motion", "condition", "model", "decode", "total"):
        p = summary["ms_per_frame"][stage]
        assert 0 <= p["p50"] <= p["p95"]
    with av.open(str(out)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 7 and frames[0].shape == (32, 32, 3)


@pytest.mark.parametrize("args, reason", [
    (["--driving", "/nonexistent.mp4"], "driving input not found"),
    (["--reference", "/nonexistent.png"], "cannot read reference image"),
    (["--character", "no-such-character"], "unknown character"),
    (["--steps", "9"], "--steps must be in 1..4"),
    (["--checkpoint", "/nonexistent-ckpt"], "not a checkpoint"),
])
def test_bad_inputs_exit_2_with_one_line(inputs: dict[str, Path], args: list[str], reason: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = str(inputs["dir"] / "bad.mp4")
    rc = main(["animate", "--driving", str(inputs["track"]), "--checkpoint",
               str(inputs["ckpt"]), "--out", out, "--quiet", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert reason in err[-1] and err[-1].startswith("marionette animate:")


def test_strip_shows_condition_studio_render_and_output_per_chosen_frame(
        inputs: dict[str, Path]) -> None:
    """The README picture: one column per chosen frame, one row per stage (a track
    has no camera image, so: condition, the character's studio render, the output)."""
    from PIL import Image

    from realtime.avatars import gallery

    strip = inputs["dir"] / "strip.png"
    out = inputs["dir"] / "strip.mp4"
    name = gallery.names()[0]
    assert _animate(inputs, "--character", name, "--out", str(out), "--strip", str(strip),
                    "--strip-columns", "3") == 0
    img = np.asarray(Image.open(strip).convert("RGB"))
    tile, gap = 160, 2
    assert img.shape == (3 * tile + 2 * gap, 3 * tile + 2 * gap, 3)
    step = tile + gap
    tiles = [[img[r * step:r * step + tile, c * step:c * step + tile] for c in range(3)]
             for r in range(3)]
    # the condition row draws the driver's strokes on black; the studio row draws the
    # character over its plain background; neither is blank
    for c in range(3):
        cond, studio = tiles[0][c].astype(int), tiles[1][c].astype(int)
        assert (cond.max(axis=-1) > 0).mean() > 0.005 and (cond.max(axis=-1) == 0).mean() > 0.5
        assert studio.std() > 10
    # the driver moves, so the columns' condition maps differ
    assert np.abs(tiles[0][0].astype(int) - tiles[0][2].astype(int)).sum() > 0


def test_a_face_shot_draws_the_character_large_in_the_strips_studio_row(
        inputs: dict[str, Path]) -> None:
    """--framing face: the studio row (the ground truth of that shot) shows the
    character filling the picture, not the full-body figure."""
    from PIL import Image

    from realtime.avatars import gallery
    from realtime.motion.retarget import rest_body_landmarks

    # a performer standing at rest, swaying (the shared track's random points make no
    # figure a close shot could frame)
    frames = []
    for i in range(4):
        body = np.ones((33, 4), np.float32)
        body[:, :3] = 0.6 * rest_body_landmarks()
        body[:, 0] += 0.5 + 0.02 * i
        body[:, 1] += 0.6
        frames.append(MotionFrame(i, i / 25, (240, 240), body, None, None, None,
                                  confidence={"body": 1.0}))
    track = inputs["dir"] / "standing.npz"
    save_track(track, frames, meta={"fps": 25.0})
    name = min(gallery.names(), key=lambda n: gallery.get(n).head_h)   # adult proportions
    cover = {}
    for framing in ("full", "face"):
        strip, js = inputs["dir"] / f"{framing}.png", inputs["dir"] / f"{framing}.json"
        assert main(["animate", "--driving", str(track), "--checkpoint", str(inputs["ckpt"]),
                     "--quiet", "--character", name, "--framing", framing, "--out",
                     str(inputs["dir"] / f"{framing}.mp4"), "--strip", str(strip),
                     "--strip-columns", "2", "--json", str(js)]) == 0
        assert json.loads(js.read_text())["framing"] == framing
        studio = np.asarray(Image.open(strip).convert("RGB"))[162:322, :160].astype(int)
        background = studio[0, 0]
        cover[framing] = float((np.abs(studio - background).sum(-1) > 30).mean())
    assert cover["face"] > 2 * cover["full"] and cover["full"] > 0.02, cover
