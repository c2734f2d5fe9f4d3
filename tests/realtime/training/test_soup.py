"""`marionette train soup`: checkpoints of one architecture averaged weight by weight,
streaming as each of them did, with the teacher beside."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from realtime.model.checkpoint import init_checkpoint, load_checkpoint
from realtime.training import cli


def _train_soup(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return cli.run(parser.parse_args(["soup", *argv]))


@pytest.fixture()
def two(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    init_checkpoint("tiny", a, seed=0)
    init_checkpoint("tiny", a / "teacher", seed=5)
    init_checkpoint("tiny", b, seed=1)
    return a, b


def test_the_soup_is_the_mean_of_every_weight(two: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = two
    out = tmp_path / "soup"
    assert _train_soup([str(a), str(b), "--out", str(out)]) == 0
    sa, sb = load_checkpoint(a).state_dict(), load_checkpoint(b).state_dict()
    soup = load_checkpoint(out)                       # loads and checks like any checkpoint
    assert soup.cfg == load_checkpoint(a).cfg
    for k, v in soup.state_dict().items():
        torch.testing.assert_close(v, (sa[k] + sb[k]) / 2, atol=1e-6, rtol=0)
    # the first one's teacher comes along, so `eval` can compare against it
    teacher, want = (load_checkpoint(d / "teacher").state_dict() for d in (out, a))
    assert all(torch.equal(v, want[k]) for k, v in teacher.items())
    meta = json.loads((out / "config.json").read_text())["meta"]
    assert meta["soup"]["of"] == [str(a), str(b)]
    assert meta["preset"] == "tiny"                   # the first one's meta, kept


def test_weights_tilt_the_mean(two: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = two
    out = tmp_path / "tilted"
    assert _train_soup([str(a), str(b), "--out", str(out), "--weights", "3", "1"]) == 0
    sa, sb = load_checkpoint(a).state_dict(), load_checkpoint(b).state_dict()
    for k, v in load_checkpoint(out).state_dict().items():
        torch.testing.assert_close(v, 0.75 * sa[k] + 0.25 * sb[k], atol=1e-6, rtol=0)


def test_dit_only_keeps_the_first_ones_autoencoder(two: tuple[Path, Path],
                                                   tmp_path: Path) -> None:
    a, b = two
    out = tmp_path / "dit"
    assert _train_soup([str(a), str(b), "--out", str(out), "--dit-only"]) == 0
    sa, sb = load_checkpoint(a).state_dict(), load_checkpoint(b).state_dict()
    # the two initialisations differ, so keeping the first one's autoencoder shows
    assert not torch.equal(sa["ae.encoder.stem.weight"], sb["ae.encoder.stem.weight"])
    state = load_checkpoint(out).state_dict()
    assert any(k.startswith("ae.") for k in state) and any(k.startswith("dit.") for k in state)
    for k, v in state.items():
        if k.startswith("ae."):
            assert torch.equal(v, sa[k]), k
        else:
            torch.testing.assert_close(v, (sa[k] + sb[k]) / 2, atol=1e-6, rtol=0)


def test_a_soup_of_one_model_with_itself_is_that_model(two: tuple[Path, Path],
                                                       tmp_path: Path) -> None:
    a, _ = two
    out = tmp_path / "same"
    assert _train_soup([str(a), str(a), "--out", str(out)]) == 0
    sa = load_checkpoint(a).state_dict()
    for k, v in load_checkpoint(out).state_dict().items():
        assert torch.equal(v, sa[k]), k


@pytest.mark.parametrize("case", ["other architecture", "other steps", "one checkpoint",
                                  "weights", "out is an input", "missing"])
def test_what_cannot_be_averaged_is_refused_and_nothing_written(
        two: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        case: str) -> None:
    a, b = two
    out = tmp_path / "soup"
    if case == "other architecture":
        init_checkpoint("cpu", b, seed=1)
        argv = [str(a), str(b), "--out", str(out)]
    elif case == "other steps":
        info = json.loads((b / "config.json").read_text())
        info["config"]["steps"] = 1 if info["config"]["steps"] != 1 else 2
        (b / "config.json").write_text(json.dumps(info))
        argv = [str(a), str(b), "--out", str(out)]
    elif case == "one checkpoint":
        argv = [str(a), "--out", str(out)]
    elif case == "weights":
        argv = [str(a), str(b), "--out", str(out), "--weights", "1"]
    elif case == "out is an input":
        out = a
        argv = [str(a), str(b), "--out", str(a)]
    else:
        argv = [str(a), str(tmp_path / "none"), "--out", str(out)]
    before = (a / "model.safetensors").read_bytes()
    assert _train_soup(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("marionette train soup:") and "Traceback" not in err
    assert (a / "model.safetensors").read_bytes() == before
    if out != a:
        assert not out.exists()
