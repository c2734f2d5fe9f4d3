"""The latency run's figure: CDF, stacked per-stage medians, latency over time.

Latency over time is the panel that proves there is no creep: per-second median and
p95 of e2e latency over the whole run, with resident memory on a second axis for
soak runs. Matplotlib with the Agg backend (no display needed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.latency_report import ordered_parts, short_commit
from bench.latency_summary import PART_ORDER

# One fixed colour per part, in pipeline order (tab20: 20 colours), so figures compare.
COLORS = {name: f"tab20:{i}" for i, name in enumerate(PART_ORDER)}


def _color(name: str) -> object:
    import matplotlib

    spec = COLORS.get(name)
    if spec is None:
        return None
    cmap, i = spec.split(":")
    return matplotlib.colormaps[cmap](int(i))


def _num(x: Any) -> float:
    return float("nan") if x is None else float(x)


def write_plot(doc: dict[str, Any], path: str | Path) -> None:
    """Write the 2x2 PNG (CDF, stages, latency over time, memory) for the runs in `doc`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = doc["runs"]
    has_rss = any(r.get("rss_mb", {}).get("client") for r in runs)
    staged = [r for r in runs if r.get("stage_series", {}).get("t_s")]
    rows = 2 + len(staged)
    fig = plt.figure(figsize=(12, 4.25 * rows))
    spec = fig.add_gridspec(rows, 2)
    ax_cdf, ax_bar = fig.add_subplot(spec[0, 0]), fig.add_subplot(spec[0, 1])
    ax_time, ax_mem = fig.add_subplot(spec[1, 0]), fig.add_subplot(spec[1, 1])
    engine_color = {r["engine"]: f"C{i}" for i, r in enumerate(runs)}

    for r in runs:
        cdf = [_num(v) for v in r.get("cdf_ms", [])]
        if cdf:
            ax_cdf.plot(cdf, [i / 100 for i in range(len(cdf))], label=r["engine"],
                        color=engine_color[r["engine"]])
    ax_cdf.set_xlabel("glass-to-glass latency (ms)")
    ax_cdf.set_ylabel("fraction of frames")
    ax_cdf.set_title("latency CDF (after warm-up)")
    ax_cdf.grid(alpha=0.3)
    ax_cdf.legend()

    names = [r["engine"] for r in runs]
    bottoms = [0.0] * len(runs)
    for s in ordered_parts(runs):
        vals = [max(_num(r["stages_ms"].get(s, 0.0)), 0.0) for r in runs]
        vals = [0.0 if v != v else v for v in vals]          # NaN -> 0
        ax_bar.bar(names, vals, bottom=bottoms, label=s, color=_color(s))
        bottoms = [b + v for b, v in zip(bottoms, vals, strict=True)]
    for i, r in enumerate(runs):
        ax_bar.plot([i - 0.4, i + 0.4], [_num(r["e2e_ms"]["p50"])] * 2, "k--", lw=1)
    ax_bar.set_ylabel("median ms per stage (dashed: e2e p50)")
    ax_bar.set_title("where the milliseconds go")
    handles, labels = ax_bar.get_legend_handles_labels()      # top of the stack first
    ax_bar.legend(handles[::-1], labels[::-1], fontsize=7, loc="center left",
                  bbox_to_anchor=(1.0, 0.5))
    ax_bar.set_xlim(-0.7, len(runs) - 0.3)

    top = 0.0
    for r in runs:
        ser = r["series"]
        t = ser["t_s"]
        warm = ser.get("warmup_end_s")
        if warm:
            ax_time.axvspan(0, warm, color="0.9", lw=0)
            steady = [_num(v) for ts, v in zip(t, ser["p95_ms"], strict=True) if ts >= warm]
            top = max([top, *[v for v in steady if v == v]])
        c = engine_color[r["engine"]]
        ax_time.plot(t, [_num(v) for v in ser["p50_ms"]], color=c, label=f"{r['engine']} p50")
        ax_time.plot(t, [_num(v) for v in ser["p95_ms"]], color=c, ls=":",
                     label=f"{r['engine']} p95")
    ax_time.set_xlabel("time since connection start (s)")
    ax_time.set_ylabel(f"latency per {runs[0]['series']['width_s'] if runs else 1:g} s (ms)")
    ax_time.set_title("latency over time")
    # scale to the steady state (warm-up shaded; its spike may run off the top)
    ax_time.set_ylim(0, top * 1.3 if top > 0 else None)
    ax_time.grid(alpha=0.3)
    ax_time.legend(fontsize=7)

    if has_rss:
        for r in runs:
            for who, ls in (("client", "-"), ("server", "--")):
                pts = r["rss_mb"].get(who) or []
                if pts:
                    ax_mem.plot([p[0] for p in pts], [p[1] for p in pts], ls=ls,
                                color=engine_color[r["engine"]], label=f"{r['engine']} {who}")
        ax_mem.set_xlabel("time since connection start (s)")
        ax_mem.set_ylabel("resident memory (MB)")
        ax_mem.set_title("memory over time")
        ax_mem.set_ylim(bottom=0)
        ax_mem.grid(alpha=0.3)
        ax_mem.legend(fontsize=7)
    else:
        ax_mem.set_axis_off()

    for row, r in enumerate(staged, start=2):
        _stages_over_time(fig.add_subplot(spec[row, :]), r)

    m = doc.get("machine", {})
    fig.suptitle(f"marionette bench latency — {m.get('cpu', '?')}, {m.get('cores', '?')} cores, "
                 f"{m.get('gpu') or 'no GPU'}, {short_commit(doc.get('commit', ''))}, "
                 f"{doc.get('date', '')}",
                 fontsize=9)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _stages_over_time(ax: Any, run: dict[str, Any]) -> None:
    """Each stage's median per interval, stacked in pipeline order: which stage a creep or
    a burst of latency comes from."""
    ser = run["stage_series"]
    t = ser["t_s"]
    names = ordered_parts([{"stages_ms": ser["p50_ms"]}])
    stack = [[max(_num(v), 0.0) if _num(v) == _num(v) else 0.0 for v in ser["p50_ms"][n]]
             for n in names]
    # step="post" draws each interval from its start: repeat the last value to its end
    t_last = max([t[-1], *run.get("series", {}).get("t_s", [])])     # the run's last second
    t_end = [*t, min(t[-1] + ser["width_s"], t_last + 1)]
    stack = [[*col, col[-1]] for col in stack]
    ax.stackplot(t_end, *stack, labels=names, colors=[_color(n) for n in names], step="post")
    warm = run.get("series", {}).get("warmup_end_s")
    if warm:
        ax.axvspan(0, warm, color="0.9", lw=0)
    ax.set_xlabel("time since connection start (s)")
    ax.set_ylabel(f"median ms per stage per {ser['width_s']:g} s")
    ax.set_title(f"{run['engine']}: where the milliseconds go over time")
    ax.set_xlim(0, t_end[-1])
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    handles, labels = handles[::-1], labels[::-1]
    host = [p for p in run.get("host_work_ms") or [] if p[1] is not None]
    if host:
        # the host canary on a second axis: when every stage swells while it rises,
        # the machine slowed down, not the pipeline
        twin = ax.twinx()
        (line,) = twin.plot([p[0] for p in host], [p[1] for p in host], color="k", lw=1,
                            label="host: fixed work (ms CPU)")
        twin.set_ylabel("fixed work, ms of CPU (host speed)")
        twin.set_ylim(0, max(p[1] for p in host) * 1.5)
        handles, labels = [line, *handles], [line.get_label(), *labels]
    ax.legend(handles, labels, fontsize=7, loc="center left", bbox_to_anchor=(1.06, 0.5))
