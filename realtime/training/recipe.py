"""`marionette train all`: a trained checkpoint from nothing, inside a wall-time budget.

One command runs what the shipped default took a dozen: it builds the studio
dataset when DATA holds none, then trains, each stage into its own folder of OUT,

    ae/        the autoencoder (studio + real frames)
    teacher/   the guided flow-matching teacher, from ae/
    student/   the few-step causal student distilled from it, on persistent streams
    final/     student/ wearing a decoder fine-tuned on the student's own streams
               with the frame-to-frame term (what stops 14-21 found a stream needs
               to be steady), the teacher beside it: the checkpoint to use

The budget (`--hours`) is shared out over what is left when each stage starts, in
the proportions of `SHARES`, and every stage plans its step count to end on time
(`LoopConfig.deadline`: the first steps measure the rate on this machine, on
whatever else it is running). `OUT/recipe.json` records the face and hand weights
(`--region-weight`, `--pair-weight`; off by default: stop 23 in the default
checkpoint's `history/EXPERIMENTS.md`), each finished stage and the time spent;
`--resume` skips the finished stages, continues the interrupted one exactly (its
planned step count travels with its training state) and gives the rest what is left
of the budget (the interrupted run's own time is not known, so a resumed recipe can
end later than the budget by that much).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from realtime.training.stages import STAGES, StageArgs

log = logging.getLogger(__name__)

RECIPE_FILE = "recipe.json"
# share of the time left that each stage gets, in order
SHARES: tuple[tuple[str, float], ...] = (("ae", 0.05), ("teacher", 0.40),
                                         ("student", 0.40), ("final", 0.15))
DECODER_TEMPORAL_WEIGHT = 4.0   # stop 19-20 shipped 2, stop 21 6 (flicker 1.54 -> 1.23)
EXPORT_RESERVE = 0.03           # of a stage's time, kept for its last export


@dataclass
class RecipeArgs:
    preset: str
    data: Path
    out: Path
    hours: float
    resume: bool = False
    device: str | None = None
    seed: int = 0
    progress: bool = True
    real_media: bool = True
    stop_after: str | None = None   # end after this stage (tests: an interruption)
    region_weight: float = 0.0      # autoencoder and teacher: loss x (1 + this) on and
                                    # around the face and hands
    pair_weight: float = 0.0        # teacher and student: the counterfactual-pair term
    batch_scale: int = 1            # every stage's batch x this (`StageArgs.batch_scale`)


def _dataset_config(preset: str) -> Any:
    """The studio dataset a preset trains on (the cpu one: the shipped default's)."""
    from realtime.avatars.dataset import DatasetConfig
    from realtime.model.config import get_preset

    if preset == "tiny":
        return DatasetConfig.preset("tiny")
    return DatasetConfig(characters=32, clips=256, resolution=get_preset(preset).resolution,
                         frames=24, performers=12, clips_per_shard=32)


def _stage_args(r: RecipeArgs, name: str, deadline: float, resume: bool) -> StageArgs:
    out = r.out / name
    a = StageArgs(preset=r.preset, data=r.data, out=out, resume=resume, device=r.device,
                  seed=r.seed, progress=r.progress, real_media=r.real_media,
                  deadline=deadline, batch_scale=r.batch_scale)
    if name == "ae":
        return replace(a, region_weight=r.region_weight)
    if name == "teacher":
        return replace(a, init=r.out / "ae", region_weight=r.region_weight,
                       pair_weight=r.pair_weight)
    if name == "student":
        return replace(a, init=r.out / "teacher", pair_weight=r.pair_weight)
    if name == "final":
        return replace(a, decoder_of=r.out / "student", on_student=True,
                       temporal_weight=DECODER_TEMPORAL_WEIGHT)
    return a


def _runner(name: str) -> Any:
    return STAGES["ae" if name == "final" else name]


def run_recipe(r: RecipeArgs) -> dict[str, Any]:
    """Dataset (if needed) and the four stages; -> the recipe record (also in
    OUT/recipe.json)."""
    if r.hours <= 0:
        raise ValueError(f"--hours must be positive, got {r.hours}")
    path = r.out / RECIPE_FILE
    if path.is_file():
        if not r.resume:
            raise ValueError(f"{r.out} holds a recipe run already: pass --resume to "
                             f"continue it, or another --out")
        record = json.loads(path.read_text())
        for key in ("preset", "region_weight", "pair_weight", "batch_scale"):
            # records before stop 23 have no weights, before stop 25 no batch scale
            was = record.get(key, 1 if key == "batch_scale" else 0.0)
            if was != getattr(r, key):
                raise ValueError(f"{r.out} was trained with {key} {was!r}, "
                                 f"not {getattr(r, key)!r}")
    elif r.out.exists() and any(r.out.iterdir()):
        raise ValueError(f"{r.out} exists and is not a recipe run: choose another --out")
    else:
        record = {"preset": r.preset, "region_weight": r.region_weight,
                  "pair_weight": r.pair_weight, "batch_scale": r.batch_scale,
                  "data": str(r.data), "budget_s": r.hours * 3600,
                  "spent_s": 0.0, "stages": {}}
    r.out.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        path.write_text(json.dumps(record, indent=2) + "\n")

    deadline = time.monotonic() + float(record["budget_s"]) - float(record["spent_s"])
    if not (r.data / "index.json").is_file():
        from realtime.avatars.dataset import build

        log.info("building the studio dataset in %s", r.data)
        t0 = time.monotonic()
        build(_dataset_config(r.preset), r.data)
        record["dataset_s"] = round(time.monotonic() - t0, 1)
        record["spent_s"] = float(record["spent_s"]) + record["dataset_s"]
        save()

    for i, (name, share) in enumerate(SHARES):
        if record["stages"].get(name, {}).get("done"):
            continue
        now = time.monotonic()
        rest = sum(s for _, s in SHARES[i:])
        stage_s = max(0.0, deadline - now) * share / rest
        resume = (r.out / name / "train_state.pt").is_file()
        log.info("stage %s: %.1f min of the %.1f left%s", name, stage_s / 60,
                 (deadline - now) / 60, " (resumed)" if resume else "")
        args = _stage_args(r, name, now + stage_s * (1 - EXPORT_RESERVE), resume)
        t0 = time.monotonic()
        summary = _runner(name)(args)
        wall = time.monotonic() - t0
        record["stages"][name] = {"done": True, "wall_s": round(wall, 1),
                                  "budget_s": round(stage_s, 1), "resumed": resume,
                                  "summary": summary}
        record["spent_s"] = float(record["spent_s"]) + wall
        save()
        if name == r.stop_after:
            break
    record["final"] = str(r.out / "final") if record["stages"].get("final") else None
    save()
    return record
