"""The latency run's outputs: JSON document and Markdown summary.

The JSON schema is documented in bench/README.md ("JSON schema"); `SCHEMA` names
its version and changes whenever a field changes meaning.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bench.machine import git_commit, machine_info, utc_now

SCHEMA = "marionette.bench.latency/1"
REPO = Path(__file__).resolve().parents[1]

# The targets for the CPU preset at 30 fps input.
GOAL_P95_MS = 150.0
GOAL_FPS_OUT = 20.0
GOAL_DRIFT_PCT = 10.0


def build_document(runs: list[dict[str, Any]], config: dict[str, Any],
                   notes: str = "") -> dict[str, Any]:
    """The whole JSON document: provenance plus one entry per engine run."""
    return {"schema": SCHEMA, "date": utc_now(), "commit": git_commit(),
            "machine": machine_info(), "config": config, "notes": notes, "runs": runs}


def _clean(obj: Any) -> Any:
    """NaN/inf are not JSON: write them as null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def write_json(doc: dict[str, Any], path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(_clean(doc), indent=1) + "\n")


def headline(run: dict[str, Any]) -> dict[str, Any]:
    """The few numbers printed as the bench's final JSON line."""
    keys = ("engine", "codec", "e2e_ms", "first_frame_ms", "fps_in", "fps_out", "jitter_ms")
    out = {k: run.get(k) for k in keys}
    out["e2e_ms"] = {k: run["e2e_ms"][k] for k in ("p50", "p95", "p99")}
    out["dropped"] = run["dropped"]["total"]
    return _clean(out)


def _drift(d: dict[str, Any]) -> str:
    """'+4.1 ms (+6.3 %)': last window's median minus the first's."""
    first, last = d.get("first_p50_ms"), d.get("last_p50_ms")
    if first is None or last is None or not (math.isfinite(first) and math.isfinite(last)):
        return "–"
    return f"{last - first:+.1f} ms ({_f(d['change_pct'])} %)"


def _cpu_use(use: dict[str, float] | None) -> str:
    """' The machine's CPU over the run: 93.1 % busy, 0.4 % stolen by the host.'"""
    if not use:
        return ""
    return (f" The machine's CPU over the run: {use['busy']:.1f} % busy, {use['steal']:.1f} % "
            "stolen by the hypervisor.")


def short_commit(commit: str) -> str:
    """The sha cut to 12 characters, keeping a '-dirty' mark (uncommitted changes)."""
    return commit[:12] + ("-dirty" if commit.endswith("-dirty") else "")


def _f(x: Any, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.{digits}f}"


def markdown(doc: dict[str, Any], plot_name: str | None = None) -> str:
    """A summary fit to paste into the README."""
    m, cfg = doc["machine"], doc["config"]
    gpu = m.get("gpu") or "no GPU"
    lines = [
        f"### Latency, {cfg.get('source', '?')} source at {cfg.get('fps')} fps, "
        f"{cfg.get('client')} client, {cfg.get('seconds')} s",
        "",
        f"{m['cpu']}, {m['cores']} cores, {gpu}; commit `{short_commit(doc['commit'])}`, "
        f"{doc['date']}. Warm-up {cfg.get('warmup_s')} s excluded from percentiles."
        + _cpu_use(cfg.get("cpu_use_pct")),
        "",
        "| engine | preset | codec | in → out | e2e p50 | p95 | p99 | first frame | "
        "fps in | fps out | jitter | dropped | drift (last − first window) |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in doc["runs"]:
        res = r.get("resolution", {})
        size = "×".join(map(str, res.get("input") or ["?"])) + " → " + \
            "×".join(map(str, res.get("output") or ["?"]))
        e = r["e2e_ms"]
        lines.append(
            f"| {r['engine']} | {r.get('preset') or '–'} | {r.get('codec') or '?'} | {size} | "
            f"{_f(e['p50'])} | {_f(e['p95'])} | {_f(e['p99'])} | {_f(r['first_frame_ms'], 0)} | "
            f"{_f(r['fps_in'])} | {_f(r['fps_out'])} | {_f(r['jitter_ms'])} | "
            f"{r['dropped']['total']} | {_drift(r['drift'])} |")
    lines += ["", "Per stage (ms), median and p95 over frames; for each frame the parts add up "
              "to its e2e latency:", ""]
    stages = ordered_parts(doc["runs"])
    lines.append("| engine | " + " | ".join(stages) + " |")
    lines.append("|---|" + "---:|" * len(stages))
    for r in doc["runs"]:
        for stat, key in (("p50", "stages_ms"), ("p95", "stages_p95_ms")):
            lines.append(f"| {r['engine']} {stat} | "
                         + " | ".join(_f(r.get(key, {}).get(s)) for s in stages) + " |")
    lines += ["", "Drops by stage (server counters, then frames the server never saw): "
              + "; ".join(f"{r['engine']}: " + ", ".join(
                  [f"{k} {v}" for k, v in r["dropped"]["by_stage"].items()]
                  + [f"before the server {r['dropped'].get('before_server', 0)}"])
                  for r in doc["runs"]) + "."]
    cpus = [f"{r['engine']}: {stage_cpu(r)}" for r in doc["runs"] if r.get("stages_cpu_ms")]
    if cpus:
        lines += ["", "CPU time of the stages that measure it, median, against the stage's "
                  "median on the clock (the rest is waiting for a core, the GIL or the "
                  "device): " + "; ".join(cpus) + "."]
    hosts = [f"{r['engine']}: {host_speed(r)}" for r in doc["runs"] if r.get("host_work_ms")]
    if hosts:
        lines += ["", "Host speed (CPU time of a fixed piece of work every 5 s, median and "
                  "range; it rises when the core itself runs slower): " + "; ".join(hosts) + "."]
    creeps = [f"{r['engine']}: {stage_drift(r)}" for r in doc["runs"]
              if r["drift"].get("by_stage")]
    if creeps:
        lines += ["", "Where the drift comes from (each stage's median in the last window minus "
                  "that in the first, largest first): " + "; ".join(creeps) + "."]
    lines += ["", "Goals (CPU preset, 30 fps in): e2e p95 ≤ "
              f"{GOAL_P95_MS:.0f} ms, ≥ {GOAL_FPS_OUT:.0f} fps out, last-window median within "
              f"{GOAL_DRIFT_PCT:.0f} % of the first:"]
    for r in doc["runs"]:
        p95, fps, drift = r["e2e_ms"]["p95"], r["fps_out"], r["drift"]["change_pct"]
        ok = [p95 is not None and p95 <= GOAL_P95_MS, fps is not None and fps >= GOAL_FPS_OUT,
              drift is not None and abs(drift) <= GOAL_DRIFT_PCT]
        marks = ["met" if o else "NOT met" for o in ok]
        lines.append(f"- {r['engine']}: p95 {_f(p95)} ms ({marks[0]}), {_f(fps)} fps out "
                     f"({marks[1]}), drift {_f(drift)} % over {_f(r['drift']['window_s'], 0)} s "
                     f"windows ({marks[2]}); dominant stage: {dominant_stage(r)}.")
    if doc.get("notes"):
        lines += ["", doc["notes"]]
    if plot_name:
        lines += ["", f"![latency]({plot_name})"]
    lines += ["", f"Command: `{cfg.get('command', '')}`", ""]
    return "\n".join(lines)


def ordered_parts(runs: list[dict[str, Any]]) -> list[str]:
    """Every part any run reports, in pipeline order (unknown ones last)."""
    from bench.latency_summary import PART_ORDER

    seen = {p for r in runs for p in r["stages_ms"]}
    return [p for p in PART_ORDER if p in seen] + sorted(seen - set(PART_ORDER))


def dominant_stage(run: dict[str, Any]) -> str:
    """The stage with the largest median share of e2e latency."""
    stages = {k: v for k, v in run["stages_ms"].items() if v is not None and math.isfinite(v)}
    if not stages:
        return "–"
    name = max(stages, key=lambda k: stages[k])
    return f"{name} ({stages[name]:.1f} ms)"


def stage_drift(run: dict[str, Any], top: int = 5) -> str:
    """'model +40.2 ms, handoff +31.0 ms, ...': the stages whose median moved most between
    the first and the last window (those that moved by under 0.5 ms left out)."""
    moves = []
    for name, d in run["drift"].get("by_stage", {}).items():
        first, last = d.get("first_p50_ms"), d.get("last_p50_ms")
        if first is None or last is None or not (math.isfinite(first) and math.isfinite(last)):
            continue
        if abs(last - first) >= 0.5:
            cpu = ""
            c0, c1 = d.get("cpu_first_p50_ms"), d.get("cpu_last_p50_ms")
            if c0 is not None and c1 is not None and math.isfinite(c0) and math.isfinite(c1):
                cpu = f" (CPU {c1 - c0:+.1f} ms)"
            moves.append((last - first, f"{name} {last - first:+.1f} ms{cpu}"))
    moves.sort(key=lambda m: -abs(m[0]))
    return ", ".join(text for _, text in moves[:top]) or "no stage moved"


def stage_cpu(run: dict[str, Any]) -> str:
    """'model 55.0 of 86.1 ms, ae_decode 4.0 of 5.8 ms'."""
    out = []
    for name, cpu in run.get("stages_cpu_ms", {}).items():
        wall = run["stages_ms"].get(name)
        if cpu is None or wall is None:
            continue
        out.append(f"{name} {cpu:.1f} of {wall:.1f} ms")
    return ", ".join(out) or "–"


def host_speed(run: dict[str, Any]) -> str:
    """'3.1 ms (2.9–4.4)': the host canary's median and range over a run."""
    ms = [p[1] for p in run.get("host_work_ms") or [] if p[1] is not None]
    if not ms:
        return "–"
    ms.sort()
    return f"{ms[len(ms) // 2]:.1f} ms ({ms[0]:.1f}–{ms[-1]:.1f})"


def write_markdown(doc: dict[str, Any], path: str | Path, plot_name: str | None = None) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(markdown(_clean(doc), plot_name))
