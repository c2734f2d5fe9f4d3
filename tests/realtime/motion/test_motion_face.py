"""Face features on a generated schematic face: identity-agnostic calibration, head
pose signs, expressions, invariance to where and how big the face is."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.motion.face import FaceCalibration, raw_face_measures
from realtime.motion.types import FACE_FEATURES
from tests.realtime.motion.motion_synth import H, W, synthetic_face

F = {name: i for i, name in enumerate(FACE_FEATURES)}
SIZE = (W, H)


def calibrated(neutral: np.ndarray) -> FaceCalibration:
    cal = FaceCalibration()
    for i in range(31):                                   # one second at 30 fps
        cal(raw_face_measures(neutral, SIZE), i / 30)
    assert cal.calibrated
    return cal


@pytest.mark.parametrize("aperture", [0.003, 0.009])   # narrow- and wide-eyed performers
def test_any_performer_reads_neutral_at_rest_and_minus_one_closed(aperture: float) -> None:
    cal = calibrated(synthetic_face(eye_aperture=aperture))
    rest = cal(raw_face_measures(synthetic_face(eye_aperture=aperture), SIZE), 2.0)
    np.testing.assert_allclose(rest, 0.0, atol=1e-5)
    closed = cal(raw_face_measures(synthetic_face(eye_aperture=aperture * 0.02), SIZE), 2.1)
    assert closed[F["eye_open_l"]] == pytest.approx(-1.0, abs=0.05)
    assert closed[F["eye_open_r"]] == pytest.approx(-1.0, abs=0.05)
    wide = cal(raw_face_measures(synthetic_face(eye_aperture=aperture * 1.5), SIZE), 2.2)
    assert wide[F["eye_open_l"]] > 0.3


@pytest.mark.parametrize("yaw", [-0.4, -0.15, 0.15, 0.4])
def test_head_yaw_sign_and_size(yaw: float) -> None:
    cal = calibrated(synthetic_face())
    f = cal(raw_face_measures(synthetic_face(yaw=yaw), SIZE), 2.0)
    assert f[F["yaw"]] == pytest.approx(yaw, abs=0.03)       # > 0: nose to the image right
    assert abs(f[F["pitch"]]) < 0.03 and abs(f[F["roll"]]) < 0.03


def test_head_roll_is_clockwise_positive() -> None:
    cal = calibrated(synthetic_face())
    f = cal(raw_face_measures(synthetic_face(roll=0.25), SIZE), 2.0)
    assert f[F["roll"]] == pytest.approx(0.25, abs=0.03)
    assert abs(f[F["yaw"]]) < 0.03


def test_mouth_features_follow_the_mouth() -> None:
    cal = calibrated(synthetic_face())
    opened = cal(raw_face_measures(synthetic_face(mouth_gap=0.03), SIZE), 2.0)
    smile = cal(raw_face_measures(synthetic_face(mouth_half_width=0.032), SIZE), 2.1)
    assert opened[F["mouth_open"]] > 0.3
    assert smile[F["mouth_width"]] > 0.3 and abs(smile[F["mouth_open"]]) < 0.05


def test_measures_do_not_depend_on_face_position_or_size() -> None:
    a = raw_face_measures(synthetic_face(center=(0.3, 0.3), size=0.5, yaw=0.2), SIZE)
    b = raw_face_measures(synthetic_face(center=(0.7, 0.6), size=1.2, yaw=0.2), SIZE)
    c = raw_face_measures(synthetic_face(size=1.2, yaw=0.2, image_size=(480, 640)), (480, 640))
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(a, c, atol=1e-5)


def test_reset_recalibrates_for_a_new_performer() -> None:
    cal = calibrated(synthetic_face(eye_aperture=0.003))
    cal.reset()
    assert not cal.calibrated
    other = synthetic_face(eye_aperture=0.009, mouth_half_width=0.03)
    for i in range(31):
        out = cal(raw_face_measures(other, SIZE), 5 + i / 30)
    np.testing.assert_allclose(out, 0.0, atol=1e-5)
