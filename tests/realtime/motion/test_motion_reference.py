"""An uploaded picture's figure: where it stands and how large, measured with
MediaPipe on the square canvas the engine encodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from realtime.engine import pad_square
from realtime.motion.reference import ReferenceConfig, measure_reference, measure_upload
from realtime.motion.retarget import default_skeleton
from realtime.motion.types import Skeleton


def _built_in(name: str, framing: str, size: int = 256) -> tuple[np.ndarray, Skeleton]:
    """A built-in character's picture through a camera, and its true skeleton there."""
    from realtime.avatars import gallery
    from realtime.avatars.render import framing_for, render_reference

    character = gallery.get(name)
    cam = framing_for(character, framing)
    return (render_reference(character, size, framing=cam),
            character.skeleton.through(cam.center, cam.zoom))


def _root_error(a: Skeleton, b: Skeleton) -> float:
    return float(np.hypot(a.rest_root[0] - b.rest_root[0], a.rest_root[1] - b.rest_root[1]))


@pytest.mark.parametrize("framing", ["full", "upper"])
def test_a_drawn_adults_figure_is_found_where_it_stands(framing: str) -> None:
    image, truth = _built_in("ada", framing)
    measured = measure_reference(image)
    assert measured is not None
    # within a fifth of its own torso of where it stands, about its size
    assert _root_error(measured, truth) < 0.25 * truth.torso
    assert 0.75 < measured.torso / truth.torso < 1.25
    if framing == "upper":
        # the default adult is right only for a full-body figure in the middle: the
        # close shot is measured as one, where the default would draw a small figure
        fallback = default_skeleton()
        assert _root_error(measured, truth) < 0.5 * _root_error(fallback, truth)
        assert measured.torso > 1.5 * fallback.torso


def test_no_figure_gives_none() -> None:
    blank = np.full((200, 200, 3), (240, 230, 200), np.uint8)
    assert measure_reference(blank) is None
    with pytest.raises(ValueError, match="square"):
        measure_reference(np.zeros((100, 80, 3), np.uint8))


def _photo(shared_media: Path, name: str) -> np.ndarray:
    return pad_square(np.asarray(Image.open(shared_media / "source" / name).convert("RGB")))


def test_a_portrait_photo_is_measured_as_a_close_shot(shared_media: Path) -> None:
    """A head-and-shoulders photograph: hips below the frame and a figure drawn
    large; a full-length photograph: the whole figure in the frame."""
    portrait = measure_reference(_photo(shared_media, "LivePortrait__s6.jpg"))
    standing = measure_reference(_photo(shared_media, "Moore-AnimateAnyone__anyone-3.png"))
    assert portrait is not None and standing is not None
    assert portrait.rest_root[1] > 1.0 and 0.3 < standing.rest_root[1] < 0.7
    assert portrait.torso > 2 * standing.torso
    assert abs(portrait.rest_root[0] - 0.5) < 0.15


@pytest.mark.parametrize("name", ["juniper", "pip"])        # a child; a big-headed chibi
def test_a_drawn_close_up_without_a_body_is_placed_by_its_face(name: str) -> None:
    # Holistic finds no body in a drawn face close-up; Face Mesh finds the face, and
    # the studio's median figure for that kind of face lands near the character's own
    image, truth = _built_in(name, "face")
    assert measure_reference(image, ReferenceConfig(face=False)) is None
    measured = measure_reference(image)
    assert measured is not None
    assert _root_error(measured, truth) < 0.25 * truth.torso
    assert _root_error(measured, truth) < 0.2 * _root_error(default_skeleton(), truth)
    assert 0.75 < measured.torso / truth.torso < 1.25


def test_a_face_picture_without_shoulders_is_a_close_shot(shared_media: Path) -> None:
    close_up = _photo(shared_media, "LivePortrait__s7.jpg")      # a rendered cartoon boy
    assert measure_reference(close_up, ReferenceConfig(face=False)) is None
    measured = measure_reference(close_up)
    assert measured is not None
    assert measured.rest_root[1] > 1.0 and measured.torso > 2 * default_skeleton().torso


@pytest.mark.parametrize(("name", "framing"), [("ada", "upper"), ("ada", "face"),
                                               ("otto", "upper"), ("pip", "face")])
def test_an_uploads_head_is_fitted_where_its_face_is(name: str, framing: str) -> None:
    """A drawn character as an upload: the eyes, nose and mouth Face Mesh finds, and the
    head fitted to them on the measured figure, sit where the studio drew them (within
    a sixth of the eye span), and the head is the character's size (within a fifth)."""
    from realtime.avatars import gallery
    from realtime.avatars.render import framing_for
    from realtime.model.face_paste import HeadShape

    image, _ = _built_in(name, framing)
    truth = HeadShape.of(gallery.get(name), framing_for(gallery.get(name), framing))
    skeleton, features = measure_upload(image)
    assert skeleton is not None and features is not None
    span = float(np.linalg.norm(truth.rest[0] - truth.rest[1]))
    assert np.abs(features - truth.rest).max() < span / 6
    head = HeadShape.of_upload(features, skeleton)
    assert head is not None
    assert np.abs(head.rest - truth.rest).max() < span / 6
    assert 0.8 < head.rx / truth.rx < 1.2


def test_no_face_no_features() -> None:
    blank = np.full((200, 200, 3), (240, 230, 200), np.uint8)
    assert measure_upload(blank) == (None, None)
