"""One Euro filter: less jitter at rest, little lag on a step (generated signals)."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.motion.filters import OneEuroConfig, OneEuroFilter

FPS = 30.0
SIGMA = 0.003  # MediaPipe-like jitter: 0.3 % of the image height


def run(f: OneEuroFilter, x: np.ndarray) -> np.ndarray:
    return np.stack([f(x[i], i / FPS) for i in range(len(x))])


def test_jitter_on_static_signal_drops_at_least_3x() -> None:
    rng = np.random.default_rng(0)
    x = 0.5 + rng.normal(0, SIGMA, (150, 33, 3))           # 5 s of 33 static landmarks
    y = run(OneEuroFilter(), x)
    jitter_in = x[30:].std(axis=0).mean()
    jitter_out = y[30:].std(axis=0).mean()
    assert jitter_out < jitter_in / 3
    assert abs(y[30:].mean() - 0.5) < SIGMA                 # and no bias


def test_step_is_followed_within_three_frames() -> None:
    rng = np.random.default_rng(1)
    x = np.where(np.arange(90) >= 30, 0.6, 0.5)[:, None] + rng.normal(0, SIGMA, (90, 1))
    y = run(OneEuroFilter(), x)[:, 0]
    # 90 % of the 0.1 step reached no later than 3 frames (100 ms) after it.
    assert y[33] > 0.59
    assert np.all(np.abs(y[40:] - 0.6) < 0.01)


@pytest.mark.parametrize("strength", [0.5, 2.0, 4.0])
def test_strength_orders_smoothing(strength: float) -> None:
    rng = np.random.default_rng(2)
    x = 0.5 + rng.normal(0, SIGMA, (120, 20))
    base = run(OneEuroFilter(), x)[30:].std()
    other = run(OneEuroFilter(OneEuroConfig().with_strength(strength)), x)[30:].std()
    assert (other < base) == (strength > 1)


def test_strength_zero_passes_through_and_reset_forgets() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, (10, 4))
    assert np.array_equal(run(OneEuroFilter(OneEuroConfig().with_strength(0)), x), x)
    f = OneEuroFilter()
    run(f, x)
    f.reset()
    assert np.array_equal(f(np.full(4, 7.0), 10.0), np.full(4, 7.0))
    with pytest.raises(ValueError):
        OneEuroConfig().with_strength(-1)


def test_dropped_frames_use_timestamps() -> None:
    """A gap of several frames lets the output move further than one frame would."""
    a, b = OneEuroFilter(), OneEuroFilter()
    for f in (a, b):
        f(np.zeros(1), 0.0)
    one = a(np.ones(1), 1 / FPS)[0]
    gap = b(np.ones(1), 10 / FPS)[0]
    assert gap > one
