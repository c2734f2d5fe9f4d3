"""`marionette train graft`: a trained transformer onto another autoencoder's latent
grid, as stop 38 started its `cpu32` teacher from the shipped one."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from realtime.model.bundle import AnimationModel
from realtime.model.checkpoint import load_checkpoint, read_meta, save_checkpoint
from realtime.model.config import get_preset
from realtime.training import graft

TINY = get_preset("tiny")
FINE = TINY.with_(ae_widths=(8,), patch=4)      # tiny on latents twice as fine


def _save(cfg, path: Path, seed: int) -> Path:
    save_checkpoint(AnimationModel.random(cfg, seed=seed), path)
    return path


def test_graft_copies_the_transformer_and_keeps_the_new_latent_interface(tmp_path: Path) -> None:
    source = _save(TINY, tmp_path / "teacher", seed=1)
    fine = _save(FINE, tmp_path / "ae", seed=2)
    parser = argparse.ArgumentParser()
    graft.add_arguments(parser)
    args = parser.parse_args([str(fine), "--dit-from", str(source), "--out", str(tmp_path / "g")])
    assert graft.run(args) == 0
    out = load_checkpoint(tmp_path / "g")
    assert out.cfg == FINE
    record = read_meta(tmp_path / "g")["graft"]
    assert sorted(record["kept"]) == ["dit.final.linear.bias", "dit.final.linear.weight",
                                      "dit.patch_embed.proj.weight"]
    assert record["spread"] == [graft.POOL] and record["dropped"] == []
    got, src, own = (m.state_dict() for m in (out, load_checkpoint(source), load_checkpoint(fine)))
    # the autoencoder and the latent-facing layers are the new checkpoint's own
    for name in [k for k in got if k.startswith("ae.")] + [
            "dit.patch_embed.proj.weight", "dit.final.linear.weight"]:
        assert torch.equal(got[name], own[name]), name
    # every block, embedding and the pose conv come from the trained transformer
    for name in ("dit.blocks.0.attn.qkv.weight", "dit.blocks.1.mlp.2.weight",
                 "dit.pose_encoder.conv.weight"):
        assert torch.equal(got[name], src[name]) and not torch.equal(got[name], own[name])
    # the pooling over squares twice as fine pools the upsampled features as before
    feats = torch.randn(2, src[graft.POOL].shape[1], 8, 8)
    finer = F.interpolate(feats, scale_factor=2, mode="nearest")
    before = F.conv2d(feats, src[graft.POOL], stride=src[graft.POOL].shape[-1])
    after = F.conv2d(finer, got[graft.POOL], stride=got[graft.POOL].shape[-1])
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)


def test_graft_refuses_a_transformer_of_another_width(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    source = _save(TINY.with_(width=96, heads=3), tmp_path / "wide", seed=1)
    fine = _save(FINE, tmp_path / "ae", seed=2)
    parser = argparse.ArgumentParser()
    graft.add_arguments(parser)
    args = parser.parse_args([str(fine), "--dit-from", str(source), "--out", str(tmp_path / "g")])
    assert graft.run(args) == 2
    assert "width 96" in capsys.readouterr().err
    assert not (tmp_path / "g").exists()


def test_graft_says_which_source_weights_it_could_not_place(tmp_path: Path) -> None:
    # a teacher trained on finer pose maps (`--pose-scale 4`) has a path the target lacks
    from realtime.model.checkpoint import add_fine_pose

    fine_maps = add_fine_pose(AnimationModel.random(TINY, seed=1), 4)
    save_checkpoint(fine_maps, tmp_path / "teacher4")
    fine = _save(FINE, tmp_path / "ae", seed=2)
    done = graft.graft(fine, tmp_path / "teacher4", tmp_path / "g")
    assert done["dropped"] and all(k.startswith("dit.pose_encoder.fine") for k in done["dropped"])
    assert "dit.pose_encoder.conv.weight" in done["kept"]     # it reads the extra planes
