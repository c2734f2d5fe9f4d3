"""The browser client's bookkeeping, and a short run in headless Chromium."""

from __future__ import annotations

import argparse
import json
import shutil

import pytest

from bench import latency
from bench.latency_browser import (
    CHROMIUM,
    captures_by_barcode,
    resolve_barcode,
    unwrap_captures,
)


def test_looping_barcodes_become_run_wide_ids() -> None:
    # a 10-frame loop seen three times, captures missed around the wraps
    ks = [*range(10), *range(9), *range(2, 10)]
    got = unwrap_captures([(k, float(i)) for i, k in enumerate(ks)], period=10)
    assert [g for g, _ in got] == [*range(10), *range(10, 19), *range(22, 30)]


def test_a_missed_capture_is_not_replaced_by_the_previous_loops() -> None:
    period, fps = 120, 30.0
    seen = [(g, g / fps) for g in range(3 * period) if g != 2 * period + 7]  # one missed
    by_k = captures_by_barcode(seen, period)
    assert resolve_barcode(by_k, 8, before=(2 * period + 8) / fps + 0.02) == 2 * period + 8
    # barcode 7 of the third loop was never seen: unidentified, not 4 s old
    assert resolve_barcode(by_k, 7, before=(2 * period + 7) / fps + 0.02) is None
    assert resolve_barcode(by_k, None, before=1.0) is None


@pytest.mark.slow
@pytest.mark.browser
def test_echo_run_in_headless_chromium_writes_a_report(tmp_path) -> None:
    if not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not installed (make browser-deps)")
    parser = argparse.ArgumentParser()
    latency.add_arguments(parser)
    out = tmp_path / "b.json"
    args = parser.parse_args(["--synthetic", "--engine", "echo", "--client", "browser",
                              "--seconds", "5", "--warmup", "1", "--json", str(out),
                              "--report", str(tmp_path / "b.md")])
    assert latency.run(args) == 0
    (run,) = json.loads(out.read_text())["runs"]
    c = run["counts"]
    assert run["client"] == "browser" and c["matched_outputs"] > 30
    assert c["sent"] == c["matched_inputs"] + c["dropped"] + c["lost_inputs"] + c["in_flight"]
    # the displayed echo frames carry the barcode: most displays resolve to a generated
    # frame (the rest are the pacer's repeats)
    assert c["matched_outputs"] >= 0.5 * (c["received"] - c["repeats"])
    assert run["browser"]["clock_offset_uncertainty_ms"] < 50
    assert "| echo |" in (tmp_path / "b.md").read_text()
