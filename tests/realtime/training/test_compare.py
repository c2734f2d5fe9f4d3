"""`marionette eval --compare`: evaluations side by side, goals judged from their
numbers, runs of one recipe as mean and range."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from realtime.model.checkpoint import DEFAULT_CHECKPOINT
from realtime.training import evaluate
from realtime.training.compare import compare


def _eval(path: Path, psnr: float, vs_teacher_2: float, drift: float,
          first_figure: float = 14.0, last_figure: float = 13.5) -> Path:
    """A minimal `marionette eval` output, written as eval writes it (no late_* keys,
    as files from before they existed)."""
    data = {"psnr": psnr, "ssim": 0.5, "drift_db": drift,
            "student_vs_teacher_db": {"1": vs_teacher_2, "2": vs_teacher_2, "4": vs_teacher_2},
            "drift": {"first": {"psnr": 18.0, "face_psnr": 15.0, "figure_psnr": first_figure},
                      "last": {"psnr": 18.0 + drift, "face_psnr": 14.0,
                               "figure_psnr": last_figure}}}
    path.write_text(json.dumps(data))
    return path


def _row(table: str, label: str) -> list[str]:
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0].startswith(label):
            return cells[1:]
    raise AssertionError(f"no row {label!r} in\n{table}")


def test_the_goals_are_judged_from_each_evaluation(tmp_path: Path) -> None:
    good = _eval(tmp_path / "good.json", 18.9, -0.3, 0.05)
    far = _eval(tmp_path / "far.json", 17.0, -1.4, -0.7)
    table = compare([str(good), str(far)])
    assert _row(table, "metric") == ["good", "far"]
    assert _row(table, "goal 1 met") == ["yes", "no"]        # -1.4 dB below the teacher
    assert _row(table, "goal 2 met") == ["yes", "no"]        # |-0.7| > 0.5 dB
    assert _row(table, "drift over the stream") == ["+0.05", "-0.70"]


def test_runs_of_one_recipe_make_one_column_of_mean_and_range(tmp_path: Path) -> None:
    runs = [_eval(tmp_path / f"seed{s}.json", psnr, -0.2, drift)
            for s, (psnr, drift) in enumerate([(18.0, -0.2), (19.0, -0.6), (18.5, -0.1)])]
    table = compare([f"recipe={','.join(map(str, runs))}"])
    assert _row(table, "metric") == ["recipe"]
    assert _row(table, "PSNR") == ["18.50 (18.00 to 19.00)"]
    assert _row(table, "goal 2 met") == ["2 of 3 runs"]


def test_older_files_get_the_late_metrics_from_their_drift_windows(tmp_path: Path) -> None:
    old = _eval(tmp_path / "old.json", 18.0, 0.0, -0.4, first_figure=14.4, last_figure=14.1)
    table = compare([str(old)])
    assert _row(table, "figure's drift") == ["-0.30"]
    assert _row(table, "last 100 frames: PSNR") == ["17.60"]
    assert _row(table, "last 100 frames: face PSNR") == ["14.00"]
    assert _row(table, "expression response") == ["-"]      # not measured: shown, not invented


def test_the_shipped_evaluation_meets_goals_one_and_two() -> None:
    table = compare([str(DEFAULT_CHECKPOINT / "eval.json")])
    assert _row(table, "metric") == ["default"]
    assert _row(table, "goal 1 met") == ["yes"]
    assert _row(table, "goal 2 met") == ["yes"]


@pytest.mark.parametrize("content", [None, "not json", json.dumps({"uploads": {}})])
def test_a_file_that_is_not_an_evaluation_is_refused_by_name(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None) -> None:
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    parser = argparse.ArgumentParser()
    evaluate.add_arguments(parser)
    assert evaluate.run(parser.parse_args(["--compare", str(bad)])) == 2
    err = capsys.readouterr().err
    assert "bad.json" in err and "Traceback" not in err


def test_eval_without_compare_still_asks_for_a_dataset(
        capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    evaluate.add_arguments(parser)
    assert evaluate.run(parser.parse_args([])) == 2
    assert "--data" in capsys.readouterr().err
