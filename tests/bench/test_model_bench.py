"""`marionette bench model`: what it reports about one frame's compute."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_bench_model_splits_a_frames_path_from_the_cache_write_after_it(tmp_path: Path) -> None:
    """A frame waits for the denoising and the decode ('frame'); the cache write comes
    after it has left ('write'). 'total' is what the frame costs in compute: both."""
    out = tmp_path / "model.json"
    subprocess.run([sys.executable, "-m", "realtime.cli", "bench", "model", "--preset", "tiny",
                    "--threads", "1", "--warmup", "2", "--chunks", "6", "--json", str(out)],
                   check=True, capture_output=True, timeout=300)
    result = json.loads(out.read_text())
    ms = result["ms_per_frame"]
    assert result["cache_write"] == "clean" and result["device"]["threads"] == 1
    for stage in ("dit", "decode", "frame", "write", "total"):
        assert 0 < ms[stage]["min"] <= ms[stage]["p50"] <= ms[stage]["p95"], (stage, ms)
    # per chunk, total = frame + write: what a frame costs is more than what it waits for
    assert ms["total"]["min"] >= ms["frame"]["min"] + ms["write"]["min"] - 1e-3
    assert ms["total"]["p50"] > ms["frame"]["p50"]
