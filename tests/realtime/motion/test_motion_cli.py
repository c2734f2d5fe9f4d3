"""`marionette motion`: exit status 2 with a one-line reason on bad input; the JSON
summary, the track and the overlay on a generated clip (and a short real one)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from realtime.cli import main
from realtime.motion.track import load_track

N = 12


def write_clip(path: Path, codec: str = "mpeg4", n: int = N, size=(96, 64)) -> None:
    """A small generated clip (a bright square moving over a dark background)."""
    import av

    w, h = size
    with av.open(str(path), mode="w") as c:
        s = c.add_stream(codec, rate=25)
        assert isinstance(s, av.VideoStream)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for i in range(n):
            img = np.full((h, w, 3), 30, np.uint8)
            img[10:30, 5 + 4 * i:25 + 4 * i] = 220
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    return err[0]


def test_missing_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["motion", "--input", str(tmp_path / "nope.mp4"), "--quiet"]) == 2
    assert "not found" in one_line_error(capsys)


def test_unreadable_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    assert main(["motion", "--input", str(bad), "--quiet"]) == 2
    assert "cannot read" in one_line_error(capsys)


def test_json_track_and_overlay_on_a_generated_clip(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    write_clip(clip)                                     # MPEG-4 Part 2 in mp4
    out = tmp_path / "out"
    rc = main(["motion", "--input", str(clip), "--quiet", "--json", f"{out}.json",
               "--track", f"{out}.npz", "--overlay", f"{out}.mp4"])
    assert rc == 0
    summary = json.loads(Path(f"{out}.json").read_text())
    assert summary["frames"] == N
    assert set(summary["detected"]) == {"body", "face", "left_hand", "right_hand"}
    assert all(0.0 <= v <= 1.0 for v in summary["detected"].values())
    ms = summary["ms_per_frame"]
    assert 0 < ms["p50"] <= ms["p95"]
    frames = load_track(f"{out}.npz")
    assert [f.frame_id for f in frames] == list(range(N))
    assert frames[0].image_size == (96, 64)

    import av

    with av.open(f"{out}.mp4") as c:
        video = list(c.decode(video=0))
    assert len(video) == N
    assert video[0].width > 96 and video[0].height == 64  # frame + gauge panel


def test_truncated_stream_keeps_what_decodes(tmp_path: Path) -> None:
    clip = tmp_path / "clip.ts"
    write_clip(clip, n=40)                               # MPEG-TS: no index at the end
    data = clip.read_bytes()
    cut = tmp_path / "cut.ts"
    cut.write_bytes(data[: len(data) // 2])
    rc = main(["motion", "--input", str(cut), "--quiet", "--json", str(tmp_path / "s.json")])
    assert rc == 0
    assert 0 < json.loads((tmp_path / "s.json").read_text())["frames"] < 40


def test_real_clip_summary(shared_media: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    rc = main(["motion", "--input", str(shared_media / "driving" / "LivePortrait__d3.mp4"),
               "--max-frames", "15", "--quiet", "--json", str(out)])
    assert rc == 0
    summary = json.loads(out.read_text())
    assert summary["frames"] == 15
    assert summary["detected"]["face"] >= 0.9 and summary["detected"]["body"] >= 0.9


def test_unwritable_output_exits_2_before_any_work(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    clip = tmp_path / "clip.mp4"
    write_clip(clip, n=3)
    rc = main(["motion", "--input", str(clip), "--quiet",
               "--overlay", str(tmp_path / "missing" / "o.mp4")])
    assert rc == 2
    assert "cannot write" in one_line_error(capsys)
