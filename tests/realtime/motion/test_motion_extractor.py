"""The extractor's input contract: which images it takes, and clear errors for the
rest. Generated images: these run without any media."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from realtime.motion.extractor import ExtractorConfig, MotionExtractor, to_rgb


@pytest.fixture(scope="module")
def extractor() -> Iterator[MotionExtractor]:
    with MotionExtractor() as ex:
        yield ex


def test_package_import_does_not_load_mediapipe() -> None:
    import subprocess
    import sys

    code = ("import sys, realtime.motion, realtime.motion.types, realtime.motion.retarget, "
            "realtime.motion.condition, realtime.motion.processor; "
            "assert 'mediapipe' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((48, 64, 3), np.float32), "uint8"),
    (np.zeros((48, 64, 2), np.uint8), "shaped"),
    (np.zeros((48, 64, 5), np.uint8), "shaped"),
    (np.zeros((48,), np.uint8), "shaped"),
    (np.zeros((2, 48, 64, 3), np.uint8), "shaped"),
    (np.zeros((0, 64, 3), np.uint8), "empty"),
    ([[0, 1], [2, 3]], "numpy array"),
])
def test_bad_input_raises_a_clear_value_error(extractor: MotionExtractor, bad, message) -> None:
    with pytest.raises(ValueError, match=message):
        extractor.process(bad, 0, 0.0)


def test_colour_layouts_convert_exactly() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    np.testing.assert_array_equal(to_rgb(rgb), rgb)
    np.testing.assert_array_equal(to_rgb(rgb[:, :, ::-1].copy(), bgr=True), rgb)
    rgba = np.dstack([rgb, np.full((37, 53), 9, np.uint8)])
    np.testing.assert_array_equal(to_rgb(rgba), rgb)
    np.testing.assert_array_equal(to_rgb(rgba[:, :, [2, 1, 0, 3]].copy(), bgr=True), rgb)
    gray = rgb[:, :, 0].copy()
    for g in (gray, gray[:, :, None]):
        out = to_rgb(g)
        assert out.shape == (37, 53, 3)
        assert all(np.array_equal(out[:, :, c], gray) for c in range(3))


@pytest.mark.parametrize("shape", [(37, 53, 3), (480, 641, 4), (1081, 1921), (97, 31, 1)])
def test_odd_sizes_and_layouts_are_processed(extractor: MotionExtractor, shape) -> None:
    image = np.full(shape, 127, np.uint8)
    frame = extractor.process(image, frame_id=3, t_capture=1.25)
    assert frame.image_size == (shape[1], shape[0])
    assert (frame.frame_id, frame.t_capture) == (3, 1.25)
    assert frame.body is None and frame.face is None               # a blank image
    assert frame.confidence["body"] == 0.0
    assert image.flags.writeable                                   # input left as it was
    start, end = frame.stamps["extract"]
    assert end >= start


def test_strided_views_are_accepted(extractor: MotionExtractor) -> None:
    image = np.full((64, 96, 3), 90, np.uint8)
    for view in (image[:, ::-1], image[::2, ::2], image[:, :, ::-1]):
        assert extractor.process(view, 0, 0.0).image_size == (view.shape[1], view.shape[0])


def test_models_that_would_download_are_refused() -> None:
    with pytest.raises(ValueError, match="model_complexity"):
        MotionExtractor(ExtractorConfig(model_complexity=2))


def test_closed_extractor_says_so() -> None:
    ex = MotionExtractor(ExtractorConfig(hands_fallback=False))
    ex.close()
    ex.close()
    with pytest.raises(RuntimeError, match="closed"):
        ex.process(np.zeros((8, 8, 3), np.uint8), 0, 0.0)


def test_bgr_flag_and_grayscale_on_a_real_frame(shared_media: Path) -> None:
    from tests.realtime.motion.motion_synth import read_frames

    rgb = read_frames(shared_media / "driving" / "LivePortrait__d3.mp4", count=1)[0]
    with MotionExtractor(ExtractorConfig(hands_fallback=False)) as ex:
        a = ex.process(rgb, 0, 0.0)
    with MotionExtractor(ExtractorConfig(hands_fallback=False, bgr=True)) as ex:
        b = ex.process(np.ascontiguousarray(rgb[:, :, ::-1]), 0, 0.0)
    with MotionExtractor(ExtractorConfig(hands_fallback=False)) as ex:
        g = ex.process(np.ascontiguousarray(rgb.mean(axis=2).astype(np.uint8)), 0, 0.0)
    assert a.face is not None and b.face is not None and g.face is not None
    np.testing.assert_allclose(a.face, b.face, atol=1e-4)
    assert np.abs(a.face[:, :2] - g.face[:, :2]).max() < 0.02      # grey: same face
