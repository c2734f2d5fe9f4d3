"""`marionette bench latency --engine echo` end to end: a real server subprocess, a real
WebRTC connection from the Python client, and the JSON, PNG and Markdown it writes."""

from __future__ import annotations

import argparse
import json

import pytest

from bench import latency


@pytest.mark.slow
def test_echo_run_accounts_for_every_frame_and_writes_its_outputs(tmp_path, capsys) -> None:
    parser = argparse.ArgumentParser()
    latency.add_arguments(parser)
    out = {ext: tmp_path / f"latency.{ext}" for ext in ("json", "png", "md")}
    args = parser.parse_args(["--synthetic", "--engine", "echo", "--seconds", "6",
                              "--warmup", "1", "--json", str(out["json"]),
                              "--plot", str(out["png"]), "--report", str(out["md"])])
    assert latency.run(args) == 0

    doc = json.loads(out["json"].read_text())
    (run,) = doc["runs"]
    c = run["counts"]
    assert run["engine"] == "echo" and run["codec"] in ("H264", "VP8")
    assert c["matched_outputs"] > 60                 # ~6 s at 30 fps made it through
    # every input is accounted for: shown, dropped, lost on the way back, or in flight
    assert c["sent"] == c["matched_inputs"] + c["dropped"] + c["lost_inputs"] + c["in_flight"]
    assert c["unidentified"] <= 0.02 * c["generated"]   # the server read the barcodes
    assert run["e2e_ms"]["p50"] > 0 and run["e2e_ms"]["p50"] <= run["e2e_ms"]["p95"]
    assert run["first_frame_ms"] > 0 and run["fps_out"] > 0
    for part in ("network_up", "video_decode", "model", "encode", "network_down"):
        assert part in run["stages_ms"], part
    assert run["resolution"]["output"] and run["rss_mb"]["server"]

    assert out["png"].read_bytes()[:4] == b"\x89PNG"
    assert "| echo |" in out["md"].read_text()
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last)["runs"][0]["engine"] == "echo"   # ends with one JSON line
