"""`marionette train init | all | ae | teacher | student | soup | graft`.

`init` writes a random-init checkpoint of a preset (what tests and benchmarks use
before trained weights exist). `all` runs every stage in order within a wall-time
budget (`realtime.training.recipe`):

    marionette train all --data DS [--preset P] [--hours H] [--out runs/all] [--resume]
                         [--batch-scale N]

The training stages run `realtime.training.stages`:

    marionette train ae      --data DS [--preset P] [--steps N] [--out runs/ae] [--resume]
                             [--decoder-of CKPT [--on-student [--temporal-weight W]]
                              [--counterfactual W [--counterfactual-streams]]]
                             [--region-weight R]
    marionette train teacher --data DS [--init runs/ae] [--out runs/teacher] [--region-weight R]
                             [--pair-weight W] ...
    marionette train student --data DS [--init runs/teacher] [--out runs/student] ...
                             [--teacher T] [--max-age CHUNKS]
                             [--gt-weight W] [--gt-weight-long W] [--region-weight R]
                             [--pair-weight W [--pair-relative]]

(`--init` of the student stage may also be a student checkpoint: training continues
from it against its teacher.) Every stage takes `--steps N`, or `--budget MIN` to plan
its step count to end in MIN minutes, and `--batch-scale N` for N times the plan's
batch (a GPU; `bench/gpu_train.sh`).

each with a progress bar, a JSON-lines log (`--json-log`, default OUT/log.jsonl),
interval checkpoints and exact `--resume`. `soup` averages finished checkpoints
(`realtime.training.soup`):

    marionette train soup CKPT CKPT [...] --out DIR [--weights W W ...]

and `graft` puts a trained transformer on another autoencoder's latent grid
(`realtime.training.graft`):

    marionette train graft AE_CKPT --dit-from CKPT --out DIR
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

# name -> (help, add_arguments, run); the training stages add theirs here.
Stage = tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]


def _add_init(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", required=True, help="tiny | cpu | cpu32 | gpu")
    p.add_argument("--out", required=True, help="checkpoint directory to create")
    p.add_argument("--seed", type=int, default=0)


def _run_init(args: argparse.Namespace) -> int:
    from realtime.model.checkpoint import init_checkpoint
    from realtime.model.config import PRESETS

    if args.preset not in PRESETS:
        print(f"marionette train init: unknown preset {args.preset!r} "
              f"(choose from {', '.join(PRESETS)})", file=sys.stderr)
        return 2
    out = init_checkpoint(args.preset, args.out, seed=args.seed)
    print(f"wrote random-init {args.preset} checkpoint to {out}")
    return 0


_PREVIOUS = {"teacher": "ae", "student": "teacher"}


def _add_training(stage: str) -> Callable[[argparse.ArgumentParser], None]:
    def add(p: argparse.ArgumentParser) -> None:
        p.add_argument("--preset", default=None,
                       help="tiny | cpu | cpu32 | gpu (default: gpu with CUDA, else cpu)")
        p.add_argument("--data", type=Path, required=True,
                       help="studio dataset (`marionette avatar dataset --out DIR`)")
        p.add_argument("--steps", type=int, default=None,
                       help="total optimisation steps (default: the preset's plan)")
        p.add_argument("--lr", type=float, default=None,
                       help="peak learning rate of the cosine schedule (default: the "
                            "plan's; lower it to fine-tune a trained checkpoint)")
        p.add_argument("--out", type=Path, default=Path("runs") / stage,
                       help=f"output directory (default runs/{stage})")
        if stage in _PREVIOUS:
            prev = _PREVIOUS[stage]
            p.add_argument("--init", type=Path, default=Path("runs") / prev,
                           help=f"{prev} checkpoint to start from (default runs/{prev})")
        if stage == "student":
            p.add_argument("--teacher", type=Path, default=None,
                           help="teacher checkpoint (default: --init itself, or INIT/teacher "
                                "when --init is a student to train further)")
            p.add_argument("--max-age", type=int, default=None, metavar="CHUNKS",
                           help="longest life of a long training stream, in chunks "
                                "(default: the preset's plan; 0: fresh streams only)")
            p.add_argument("--gt-weight", type=float, default=None, metavar="W",
                           help="weight of the pull towards the ground truth beside the "
                                "distillation loss, fresh streams (default: the plan's)")
            p.add_argument("--gt-weight-long", type=float, default=None, metavar="W",
                           help="the same on long streams (default: --gt-weight)")
        if stage in ("ae", "teacher", "student"):
            p.add_argument("--region-weight", type=float, default=None, metavar="R",
                           help="the loss (student: its ground-truth pull) x (1 + R) on "
                                "and around the face and hands (default: the plan's, 0)")
        if stage in ("teacher", "student"):
            p.add_argument("--pair-weight", type=float, default=None, metavar="W",
                           help="+ W x the counterfactual-pair term: every training clip "
                                "is rendered again with its expression and fingers played "
                                "backwards, and the output's change from a clip to its "
                                "twin is pulled towards the truth's (default: the plan's)")
            p.add_argument("--pose-scale", type=int, default=None, metavar="S",
                           help="pose maps drawn at S x the latent size (4: twice as fine "
                                "as shipped, so fingers keep their pixels); a checkpoint at "
                                "2 gains a strided stage that starts as an average pool "
                                "(same function). Default: the --init checkpoint's")
            p.add_argument("--face-sketch", action="store_true",
                           help="one more pose plane: the face vector drawn as lids, brows "
                                "and lips on the face's points; a checkpoint without it "
                                "reads the plane at zero weight (same function)")
        if stage == "student":
            p.add_argument("--pair-relative", action="store_true",
                           help="with --pair-weight: the pair term is the error of the "
                                "output's change inside the face and hand boxes over the "
                                "truth's change there (1 = ignores it, whatever the "
                                "change's size) instead of a mean over every latent")
        if stage == "teacher":
            p.add_argument("--depth", type=int, default=None, metavar="D",
                           help="the --init checkpoint's transformer deepened to D blocks: "
                                "its own keep their order, and each new one starts as the "
                                "identity (adaLN-Zero: same function). Default: init's")
            p.add_argument("--window-noise", type=float, default=None, metavar="S",
                           help="the history frames are noised along the flow path to a "
                                "level drawn from U(0, S) per sample, and told the level, "
                                "so the face cannot be copied from the window (default 0)")
        p.add_argument("--resume", action="store_true",
                       help="continue from OUT/train_state.pt (exactly)")
        p.add_argument("--json-log", type=Path, default=None,
                       help="JSON-lines log (default OUT/log.jsonl)")
        p.add_argument("--device", default=None, help="cpu | cuda (default: cuda if present)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
        p.add_argument("--time-limit", type=float, default=None, metavar="MIN",
                       help="stop with a checkpoint after MIN minutes (--resume continues)")
        p.add_argument("--budget", type=float, default=None, metavar="MIN",
                       help="plan the step count to end in MIN minutes: the first steps "
                            "measure the rate, and the schedule runs its whole course "
                            "(instead of --steps)")
        p.add_argument("--batch-scale", type=int, default=1, metavar="N",
                       help="every batch of the preset's plan x N (default 1); on a GPU "
                            "the cpu architecture steps about as fast at N=8")
        if stage == "ae":
            p.add_argument("--no-real-media", action="store_true",
                           help="studio frames only (skip ../shared/media)")
            p.add_argument("--decoder-of", type=Path, default=None, metavar="CKPT",
                           help="fine-tune only the decoder of checkpoint CKPT: its encoder, "
                                "so its latent space, is kept, and OUT is CKPT (with the "
                                "teacher beside it) wearing the new decoder")
            p.add_argument("--on-student", action="store_true",
                           help="with --decoder-of: half of every batch is CKPT's own "
                                "student streams of the training clips (the latents it "
                                "generates), decoded with their motion against the truth")
            p.add_argument("--decoder-motion", action="store_true",
                           help="with --decoder-of: the new decoder also reads each frame's "
                                "motion (pose maps, face vector painted on the head); a "
                                "checkpoint without it gains it at zero weight")
            p.add_argument("--counterfactual", type=float, default=0.0, metavar="W",
                           help="with --decoder-of (implies --decoder-motion): + W x the loss "
                                "of decoding a frame's latents with its counterfactual twin's "
                                "motion (expression and fingers played backwards) against "
                                "the twin's frame")
            p.add_argument("--counterfactual-streams", action="store_true",
                           help="with --on-student and --counterfactual: that term on "
                                "CKPT's own streams of the training clips (their latents "
                                "decoded with the twin's motion) instead of on encodings")
            p.add_argument("--temporal-weight", type=float, default=0.0, metavar="W",
                           help="with --on-student: + W x the L1 of the decoded frame-to-"
                                "frame change against the truth's")
    return add


def _run_training(stage: str) -> Callable[[argparse.Namespace], int]:
    def run_stage(args: argparse.Namespace) -> int:
        import json
        import logging
        import time

        from realtime.model.config import default_preset
        from realtime.training.stages import STAGES as RUNNERS
        from realtime.training.stages import StageArgs

        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        a = StageArgs(preset=args.preset or default_preset(), data=args.data, out=args.out,
                      init=getattr(args, "init", None), teacher=getattr(args, "teacher", None),
                      max_age=getattr(args, "max_age", None),
                      gt_weight=getattr(args, "gt_weight", None),
                      gt_weight_long=getattr(args, "gt_weight_long", None),
                      region_weight=getattr(args, "region_weight", None),
                      pair_weight=getattr(args, "pair_weight", None),
                      pair_relative=getattr(args, "pair_relative", False),
                      window_noise=getattr(args, "window_noise", None),
                      pose_scale=getattr(args, "pose_scale", None),
                      face_sketch=getattr(args, "face_sketch", False),
                      depth=getattr(args, "depth", None), steps=args.steps,
                      lr=args.lr,
                      resume=args.resume,
                      json_log=args.json_log, device=args.device, seed=args.seed,
                      progress=not args.no_progress,
                      real_media=not getattr(args, "no_real_media", False),
                      decoder_of=getattr(args, "decoder_of", None),
                      on_student=getattr(args, "on_student", False),
                      temporal_weight=getattr(args, "temporal_weight", 0.0),
                      decoder_motion=getattr(args, "decoder_motion", False),
                      counterfactual=getattr(args, "counterfactual", 0.0),
                      counterfactual_streams=getattr(args, "counterfactual_streams", False),
                      time_limit_s=None if args.time_limit is None else 60 * args.time_limit,
                      batch_scale=args.batch_scale)
        if args.budget is not None:
            if args.steps is not None:
                print(f"marionette train {stage}: --budget plans the step count; "
                      f"leave out --steps", file=sys.stderr)
                return 2
            a.deadline = time.monotonic() + 60 * args.budget
        try:
            summary = RUNNERS[stage](a)
        except (FileNotFoundError, ValueError) as e:
            print(f"marionette train {stage}: {e}", file=sys.stderr)
            return 2
        print(json.dumps(summary))
        return 0
    return run_stage


def _add_all(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default=None,
                   help="tiny | cpu | cpu32 | gpu (default: gpu with CUDA, else cpu)")
    p.add_argument("--data", type=Path, required=True,
                   help="studio dataset; built here first when DIR holds none")
    p.add_argument("--out", type=Path, default=Path("runs") / "all",
                   help="output directory: ae/, teacher/, student/, final/ (default runs/all)")
    p.add_argument("--hours", type=float, default=3.0,
                   help="wall-time budget for everything (default 3)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in OUT")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda if present)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--no-real-media", action="store_true",
                   help="autoencoder on studio frames only (skip ../shared/media)")
    p.add_argument("--region-weight", type=float, default=0.0,
                   help="autoencoder and teacher: loss x (1 + W) on and around the face "
                        "and hands (default 0)")
    p.add_argument("--pair-weight", type=float, default=0.0,
                   help="teacher and student: weight of the counterfactual-pair term, "
                        "clips rendered again with expression and fingers played "
                        "backwards (default 0)")
    p.add_argument("--batch-scale", type=int, default=1, metavar="N",
                   help="every stage's batch x N (default 1); on a GPU the cpu "
                        "architecture steps about as fast at N=8")


def _run_all(args: argparse.Namespace) -> int:
    import json
    import logging

    from realtime.model.config import PRESETS, default_preset
    from realtime.training.recipe import RecipeArgs, run_recipe

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    preset = args.preset or default_preset()
    if preset not in PRESETS:
        print(f"marionette train all: unknown preset {preset!r} "
              f"(choose from {', '.join(PRESETS)})", file=sys.stderr)
        return 2
    try:
        record = run_recipe(RecipeArgs(preset=preset, data=args.data, out=args.out,
                                       hours=args.hours, resume=args.resume,
                                       device=args.device, seed=args.seed,
                                       progress=not args.no_progress,
                                       real_media=not args.no_real_media,
                                       region_weight=args.region_weight,
                                       pair_weight=args.pair_weight,
                                       batch_scale=args.batch_scale))
    except (FileNotFoundError, ValueError) as e:
        print(f"marionette train all: {e}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in record.items() if k != "stages"}
                     | {"stages": {k: {"wall_s": v["wall_s"], "budget_s": v["budget_s"]}
                                   for k, v in record["stages"].items()}}))
    print(f"checkpoint: {record['final']}  (marionette eval --checkpoint {record['final']} "
          f"--data {args.data})")
    return 0


def _add_soup(p: argparse.ArgumentParser) -> None:
    from realtime.training import soup

    soup.add_arguments(p)


def _run_soup(args: argparse.Namespace) -> int:
    from realtime.training import soup

    return soup.run(args)


def _add_graft(p: argparse.ArgumentParser) -> None:
    from realtime.training import graft

    graft.add_arguments(p)


def _run_graft(args: argparse.Namespace) -> int:
    from realtime.training import graft

    return graft.run(args)


STAGES: dict[str, Stage] = {
    "init": ("write a random-init checkpoint of a preset", _add_init, _run_init),
    "all": ("dataset, autoencoder, teacher, student and decoder within --hours",
            _add_all, _run_all),
    "ae": ("train the autoencoder (studio + real frames)", _add_training("ae"),
           _run_training("ae")),
    "teacher": ("train the guided flow-matching teacher", _add_training("teacher"),
                _run_training("teacher")),
    "student": ("distil the teacher into the few-step causal student",
                _add_training("student"), _run_training("student")),
    "soup": ("average the weights of several checkpoints of one architecture",
             _add_soup, _run_soup),
    "graft": ("a trained transformer on another autoencoder's latents (a teacher's start)",
              _add_graft, _run_graft),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="stage", metavar="STAGE", required=True)
    for name, (help_text, add, _) in STAGES.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add(p)


def run(args: argparse.Namespace) -> int:
    return STAGES[args.stage][2](args)
