"""The One Euro filter, vectorised over any number of signals.

Casiez, Roussel and Vogel, "1€ Filter: A Simple Speed-based Low-pass Filter for
Noisy Input in Interactive Systems", CHI 2012. A first-order low-pass filter whose
cutoff rises with the signal's (itself low-passed) speed:

    fc    = min_cutoff + beta * |dx/dt|      (Hz)
    alpha = 1 / (1 + tau / dt),  tau = 1 / (2 pi fc)
    x_hat = x_hat_prev + alpha * (x - x_hat_prev)

so a signal at rest is smoothed hard (little jitter) and a moving one is followed
with little lag. One filter instance smooths an array of any shape elementwise;
the time step comes from the capture timestamps, so dropped frames are handled.

Tuning (from the paper's procedure): set beta = 0, lower min_cutoff until the
jitter at rest is acceptable, then raise beta until fast motion has no lag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class OneEuroConfig:
    """min_cutoff in Hz; beta in 1 / (signal unit); d_cutoff in Hz (the speed's filter).

    The defaults suit body and hand landmarks in units of the image height from a
    30 fps webcam. Simulated (tests/realtime/motion/test_filters.py): white jitter of
    0.3 % of the image height at rest drops ~3.5x, a step is 90 % followed within 2
    frames, and a limb moving at half the image height per second lags ~19 ms.
    """

    min_cutoff: float = 0.5
    beta: float = 10.0
    d_cutoff: float = 1.0

    def with_strength(self, strength: float) -> OneEuroConfig:
        """Scale the smoothing: 0 disables filtering, 1 is this config, >1 is smoother."""
        if strength < 0:
            raise ValueError(f"filter strength must be >= 0, got {strength}")
        if strength == 0:
            return replace(self, min_cutoff=math.inf)
        return replace(self, min_cutoff=self.min_cutoff / strength, beta=self.beta / strength)


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Elementwise One Euro filter over arrays of a fixed shape.

    Call with the new samples and their timestamp (seconds); returns the filtered
    array (a new array, float64). `reset()` forgets the history, so the next sample
    passes through unchanged.
    """

    def __init__(self, config: OneEuroConfig | None = None) -> None:
        self.config = config or OneEuroConfig()
        self._x: np.ndarray | None = None       # last filtered value
        self._dx: np.ndarray | None = None      # last filtered speed
        self._t: float | None = None

    def reset(self) -> None:
        self._x = self._dx = None
        self._t = None

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        cfg = self.config
        if self._x is None or self._t is None or self._x.shape != x.shape or \
                math.isinf(cfg.min_cutoff):
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t
            return x.copy()
        dt = t - self._t
        if dt <= 0:  # repeated or out-of-order timestamp: assume one 30 fps frame
            dt = 1.0 / 30.0
        assert self._dx is not None
        dx = (x - self._x) / dt
        self._dx = self._dx + _alpha(cfg.d_cutoff, dt) * (dx - self._dx)
        cutoff = cfg.min_cutoff + cfg.beta * np.abs(self._dx)
        self._x = self._x + _alpha(cutoff, dt) * (x - self._x)
        self._t = t
        return self._x.copy()
