"""A transformer deepened (`deepen`, `train teacher --depth D`): it starts as the same
function, its new blocks learn, the same checkpoint always deepens to the same model,
and the result loads under its preset and distils into a student."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from realtime.model.bundle import AnimationModel
from realtime.model.checkpoint import CheckpointError, deepen, load_checkpoint
from realtime.model.config import get_preset
from realtime.training.student import new_cache

CFG = get_preset("tiny")


def _velocity(model: AnimationModel, seed: int = 0) -> torch.Tensor:
    """One chunk's velocity against a cache holding a reference, so every block's keys
    and values are read, not only its output."""
    gen = torch.Generator().manual_seed(seed)
    cfg, dit = model.cfg, model.dit
    size = (1, cfg.chunk, cfg.latent_channels, cfg.latent_size, cfg.latent_size)
    cache = new_cache(dit, 1, torch.device("cpu"))
    with torch.no_grad():
        cache.set_sink(*dit.encode_reference(torch.randn(1, 1, *size[2:], generator=gen)))
        v = dit.forward_chunk(torch.randn(size, generator=gen),
                              torch.full((1, cfg.chunk), 0.5),
                              torch.rand(1, cfg.chunk, cfg.pose_channels, cfg.pose_size,
                                         cfg.pose_size, generator=gen),
                              torch.randn(1, cfg.chunk, cfg.face_dim, generator=gen),
                              torch.ones(1, cfg.chunk, cfg.n_parts), cache)[0]
    assert v is not None
    return v


def test_a_deepened_model_starts_as_the_same_function() -> None:
    old = AnimationModel.random(CFG, seed=1)        # O(1) gates: every block matters
    new = deepen(old, 2 * CFG.depth)
    assert new.cfg.depth == 2 * CFG.depth
    assert torch.allclose(_velocity(new), _velocity(old), atol=1e-6)
    # the old blocks keep their order, spread over the new depth
    assert torch.equal(new.state_dict()["dit.blocks.2.ada.weight"],
                       old.state_dict()["dit.blocks.1.ada.weight"])
    # and the same checkpoint always deepens to the same model (an exact --resume)
    again = deepen(old, 2 * CFG.depth)
    assert all(torch.equal(a, b) for a, b in zip(new.state_dict().values(),
                                                 again.state_dict().values(), strict=True))


def test_a_model_is_deepened_not_cut() -> None:
    with pytest.raises(CheckpointError, match="deepened, not cut"):
        deepen(AnimationModel.random(CFG), CFG.depth - 1)


def test_a_teacher_trained_deeper_learns_in_its_new_blocks_and_distils(
        tiny_data: Path, tiny_ckpt: Path, tmp_path: Path) -> None:
    """`train teacher --depth D`: the new blocks' modulation leaves zero (they now change
    the output), the checkpoint loads under its preset with its depth, another preset
    still refuses it, and a student starts from it and keeps the depth, or learns from it
    at its own depth."""
    from realtime.cli import main

    common = ["--preset", "tiny", "--data", str(tiny_data), "--no-progress", "--steps", "3"]
    deep = tmp_path / "deep"
    assert main(["train", "teacher", *common, "--init", str(tiny_ckpt), "--out", str(deep),
                 "--depth", str(2 * CFG.depth)]) == 0
    teacher = load_checkpoint(deep, preset="tiny")
    assert teacher.cfg.depth == 2 * CFG.depth
    assert teacher.state_dict()["dit.blocks.1.ada.weight"].abs().sum() > 0   # a new block
    with pytest.raises(CheckpointError, match="does not match preset"):
        load_checkpoint(deep, preset="cpu")
    student = tmp_path / "student"
    assert main(["train", "student", *common, "--init", str(deep), "--out", str(student)]) == 0
    assert load_checkpoint(student, preset="tiny").cfg.depth == 2 * CFG.depth
    # or a student at its own depth learns from the deeper teacher
    beside = tmp_path / "beside"
    assert main(["train", "student", *common, "--init", str(tiny_ckpt), "--teacher", str(deep),
                 "--out", str(beside)]) == 0
    assert load_checkpoint(beside, preset="tiny").cfg.depth == CFG.depth
    assert load_checkpoint(beside / "teacher", preset="tiny").cfg.depth == 2 * CFG.depth
