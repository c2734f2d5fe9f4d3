"""The browser client's bookkeeping, and a short run in headless Chromium."""

from __future__ import annotations

import argparse
import json
import shutil

import pytest

from bench import latency
from bench.latency_browser import CHROMIUM, unwrap_captures


def test_looping_barcodes_become_run_wide_ids() -> None:
    # a 10-frame loop seen three times, captures missed around the wraps
    ks = [*range(10), *range(9), *range(2, 10)]
    got = unwrap_captures([(k, float(i)) for i, k in enumerate(ks)], period=10)
    assert [g for g, _ in got] == [*range(10), *range(10, 19), *range(22, 30)]


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
