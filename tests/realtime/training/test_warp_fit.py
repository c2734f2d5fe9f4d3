"""`train warp`: the face warp's settings fitted on studio ground truth."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from realtime.avatars.dataset import DatasetConfig, build
from realtime.model.checkpoint import init_checkpoint, load_checkpoint
from realtime.model.config import get_preset
from realtime.model.face_warp import FaceWarpConfig
from realtime.training.warp_fit import Pairs, draw_pairs, fit, score, warped


@pytest.fixture(scope="module")
def portraits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Portrait clips at 128 px, where a face is large enough to warp; the fresh
    clips of `heldout_clips` only need the dataset's plan."""
    out = tmp_path_factory.mktemp("portraits")
    build(DatasetConfig(characters=8, clips=8, resolution=128, frames=4, performers=6,
                        clips_per_shard=8, framings=("face",)), out, progress=False)
    return out


def test_the_fit_finds_settings_that_draw_the_expression_as_the_truth_does(
        portraits: Path) -> None:
    """Truth drawn by a known warp (its eyes opened twice as far, its mouth half as far
    as the defaults): fitted from the defaults, the warp comes much closer to it and
    finds its mouth's gain."""
    pairs = draw_pairs(portraits, get_preset("cpu"), "heldout_motion", 4, 8)
    known = FaceWarpConfig(eye=2.0, mouth=0.25, brow=0.6, gaze=0.0)
    truth = warped(pairs, known)
    target = Pairs([dataclasses.replace(c, frames=t)
                    for c, t in zip(pairs.clips, truth, strict=True)], pairs.held)
    # expressions to follow
    assert any(np.abs(c.face - h.face)[:, 3:].max() > 0.3
               for c, h in zip(pairs.clips, pairs.held, strict=True))
    before = score(target, FaceWarpConfig())
    found, after = fit(target, FaceWarpConfig(), rounds=1)
    assert after["face_gain_db"] > before["face_gain_db"] + 2.0
    assert after["cos"] > 0.8
    assert 0.15 < found.mouth < 0.4


def test_train_warp_writes_the_fitted_warp_into_the_checkpoint(
        portraits: Path, tmp_path: Path) -> None:
    from realtime.cli import main

    ckpt = init_checkpoint("cpu", tmp_path / "ckpt")
    report = tmp_path / "fit.json"
    assert main(["train", "warp", "--data", str(portraits), "--checkpoint", str(ckpt),
                 "--clips", "2", "--clip-frames", "4", "--rounds", "1",
                 "--json", str(report)]) == 0
    summary = json.loads(report.read_text())
    # measured on the dataset's unseen characters too, which the fit never saw
    assert {"face_gain_db", "gain", "cos"} <= set(summary["unseen_characters"])
    warp = load_checkpoint(ckpt).face_warp
    assert warp is not None and warp.to_dict() == summary["warp"]
