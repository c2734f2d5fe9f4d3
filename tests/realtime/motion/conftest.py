"""Fixtures for the motion tests: sampled frames from real clips, extracted once per
session and shared between tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from realtime.motion.types import MotionFrame
from tests.realtime.motion.motion_synth import read_frames

_CACHE: dict[tuple, list[MotionFrame]] = {}


@pytest.fixture(scope="session")
def extract_clip(shared_media: Path) -> Callable[..., list[MotionFrame]]:
    """extract_clip(name, every, count, transform=None, key='') -> MotionFrames of the
    sampled frames (fps of the timestamps: the clip's / every), cached for the session."""
    from realtime.motion.extractor import MotionExtractor

    def extract(name: str, every: int = 3, count: int = 30,
                transform: Callable[[np.ndarray], np.ndarray] | None = None,
                key: str = "") -> list[MotionFrame]:
        k = (name, every, count, key)
        if k not in _CACHE:
            frames = read_frames(shared_media / "driving" / name, every, count)
            with MotionExtractor() as ex:
                _CACHE[k] = [
                    ex.process(transform(f) if transform else f, i, i * every / 30.0)
                    for i, f in enumerate(frames)
                ]
        return _CACHE[k]

    return extract
