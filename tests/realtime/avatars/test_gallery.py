"""The built-in gallery and the `marionette avatar` command."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from realtime.avatars import gallery
from realtime.avatars.character import BUILDS
from realtime.avatars.render import render_reference
from realtime.cli import main


def test_gallery_has_at_least_12_distinct_named_characters() -> None:
    names = gallery.names()
    assert len(names) >= 12 and len(set(names)) == len(names)
    chars = [gallery.get(n) for n in names]
    assert [c.name for c in chars] == names
    assert {c.build for c in chars} == set(BUILDS)                  # chibi .. long-limbed
    assert {c.shading for c in chars} >= {0.0, 1.0}                 # flat and soft
    assert any(c.accessories for c in chars) and any(not c.accessories for c in chars)
    # every one looks different from every other
    refs = [render_reference(c, 64).astype(int) for c in chars]
    for i in range(len(refs)):
        for j in range(i + 1, len(refs)):
            assert np.abs(refs[i] - refs[j]).mean() > 5, (names[i], names[j])
    # and the same name gives the same character every time
    assert gallery.get(names[0]) == gallery.get(names[0])


def test_unknown_name_lists_the_choices() -> None:
    with pytest.raises(KeyError, match=gallery.names()[0]):
        gallery.get("nobody")


def test_cli_list_and_render(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["avatar", "list"]) == 0
    assert capsys.readouterr().out.split() == gallery.names()
    name = gallery.names()[2]
    out = tmp_path / "a.png"
    assert main(["avatar", "render", "--name", name, "--out", str(out), "--size", "96"]) == 0
    img = np.asarray(Image.open(out))
    assert img.shape == (96, 96, 3)
    assert np.array_equal(img, render_reference(gallery.get(name), 96))
    posed = tmp_path / "b.png"
    assert main(["avatar", "render", "--name", name, "--out", str(posed), "--size", "96",
                 "--pose", "random", "--seed", "4", "--background", "transparent"]) == 0
    rgba = np.asarray(Image.open(posed))
    assert rgba.shape == (96, 96, 4) and rgba[0, 0, 3] == 0
    assert main(["avatar", "render", "--name", "nobody", "--out", str(out)]) == 2


def test_cli_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["avatar", "dataset", "--out", str(tmp_path), "--characters", "3", "--clips", "3",
            "--resolution", "32", "--frames", "2", "--performers", "2", "--json"]
    assert main(args) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert '"samples"' in summary and (tmp_path / "index.json").exists()


def test_cli_dataset_framings(tmp_path: Path) -> None:
    """`--framings face` draws every clip as a head-and-shoulders portrait (the camera a
    VTuber or a video call uses), and the index records it so a resume keeps it."""
    from realtime.avatars.cli import FRAMINGS
    from realtime.avatars.dataset import character, config_from_json, iterate_dataset, read_index
    from realtime.avatars.render import FRAMINGS as RENDERABLE
    from realtime.avatars.render import framing_for

    assert FRAMINGS == RENDERABLE        # every camera the renderer has can be chosen
    args = ["avatar", "dataset", "--out", str(tmp_path), "--characters", "3", "--clips", "4",
            "--resolution", "32", "--frames", "2", "--performers", "2", "--framings", "face"]
    assert main(args) == 0
    config = config_from_json(read_index(tmp_path)["config"])
    assert config.framings == ("face",)
    by_name = {character(config, c).name: character(config, c) for c in range(3)}
    seen = 0
    for split in ("train", "heldout_character", "heldout_motion"):
        for sample in iterate_dataset(tmp_path, split):
            char = by_name[str(sample["meta"]["character"])]
            face, full = framing_for(char, "face").zoom, framing_for(char, "full").zoom
            zoom = float(sample["framing"][2])
            assert 0.85 * face <= zoom <= 1.15 * face and zoom > 1.3 * full
            seen += 1
    assert seen == 4
    # a framing the renderer does not have is refused before anything is written
    with pytest.raises(SystemExit):
        main(["avatar", "dataset", "--out", str(tmp_path / "x"), "--framings", "closeup"])
    assert not (tmp_path / "x").exists()
