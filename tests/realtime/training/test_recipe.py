"""`marionette train all`: dataset and four stages in one command, resumable, and a
checkpoint at the end that the engine streams."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from realtime.engine import StreamingEngine
from realtime.model.checkpoint import load_checkpoint
from realtime.motion.types import MotionCondition
from realtime.training.recipe import RECIPE_FILE, SHARES, RecipeArgs, run_recipe


def _starts(log: Path) -> int:
    return sum(json.loads(line).get("event") == "start" for line in log.read_text().splitlines())


def test_train_all_builds_the_data_trains_every_stage_and_resumes(tmp_path: Path) -> None:
    data, out = tmp_path / "studio", tmp_path / "run"
    args = RecipeArgs(preset="tiny", data=data, out=out, hours=0.005, progress=False,
                      real_media=False, region_weight=4.0, pair_weight=10.0)
    first = run_recipe(RecipeArgs(**{**vars(args), "stop_after": "teacher"}))
    assert (data / "index.json").is_file()                 # built, as none was there
    assert sorted(first["stages"]) == ["ae", "teacher"] and first["final"] is None

    with pytest.raises(ValueError, match="--resume"):      # nothing is overwritten
        run_recipe(args)
    # a resume must train the rest as the first part was trained
    with pytest.raises(ValueError, match="pair_weight"):
        run_recipe(RecipeArgs(**{**vars(args), "resume": True, "pair_weight": 0.0}))
    with pytest.raises(ValueError, match="batch_scale"):
        run_recipe(RecipeArgs(**{**vars(args), "resume": True, "batch_scale": 2}))

    record = run_recipe(RecipeArgs(**{**vars(args), "resume": True}))
    assert sorted(record["stages"]) == sorted(name for name, _ in SHARES)
    assert json.loads((out / RECIPE_FILE).read_text()) == json.loads(json.dumps(record))
    # the finished stages were not trained again
    assert _starts(out / "ae" / "log.jsonl") == _starts(out / "teacher" / "log.jsonl") == 1
    # every stage planned its steps from its share of the time left, and the time
    # spent (what a resumed run has left) counts the dataset and every stage once
    for name, _ in SHARES:
        events = [json.loads(x) for x in (out / name / "log.jsonl").read_text().splitlines()]
        assert any(e.get("event") == "planned" for e in events), name
    walls = sum(s["wall_s"] for s in record["stages"].values())
    assert record["spent_s"] == pytest.approx(record["dataset_s"] + walls, abs=0.5)
    # the face and hand weights reached the stages they are for
    summary = {name: s["summary"] for name, s in record["stages"].items()}
    assert summary["ae"]["region_weight"] == summary["teacher"]["region_weight"] == 4.0
    assert summary["teacher"]["pair_weight"] == summary["student"]["pair_weight"] == 10.0
    assert summary["student"]["region_weight"] == 0.0

    # final = the student, wearing a decoder fine-tuned on its streams, teacher beside it
    final, student = load_checkpoint(out / "final"), load_checkpoint(out / "student")
    a, b = final.state_dict(), student.state_dict()
    dit = [k for k in a if k.startswith("dit.")]
    decoder = [k for k in a if k.startswith("ae.decoder.")]
    assert dit and all(torch.equal(a[k], b[k]) for k in dit)
    assert any(not torch.equal(a[k], b[k]) for k in decoder)
    assert (out / "final" / "teacher" / "config.json").is_file()

    engine = StreamingEngine(final)
    cfg = final.cfg
    rng = np.random.default_rng(0)
    engine.set_reference([rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)])
    conds = [MotionCondition(0, 0.0, rng.random((16, cfg.pose_size, cfg.pose_size),
                                                  dtype=np.float32),
                             np.zeros(12, np.float32), np.ones(4, np.float32))
             for _ in range(cfg.chunk)]
    frames = engine.push(conds)
    assert len(frames) == cfg.chunk
    assert frames[0].image.shape == (cfg.resolution, cfg.resolution, 3)


def test_train_all_refuses_a_folder_that_is_not_its_own(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a recipe run"):
        run_recipe(RecipeArgs(preset="tiny", data=tmp_path / "studio", out=out, hours=0.01,
                              progress=False, real_media=False))
    assert (out / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "studio").exists()              # refused before any work
