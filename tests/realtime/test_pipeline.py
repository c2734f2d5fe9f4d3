"""AnimationPipeline: motion -> retarget -> condition -> engine, per session, with
weights shared between sessions. Tiny preset, random weights."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch

from realtime.frames import GeneratedFrame
from realtime.model.checkpoint import init_checkpoint
from realtime.motion.types import MotionCondition, NormalizedMotion
from realtime.pipeline import AnimationPipeline, create_pipeline_factory

Factory = Callable[[], AnimationPipeline]


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    """The tiny model gains nothing from more threads; spinning ones slow a shared CPU."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

@pytest.fixture(scope="module")
def factory(tmp_path_factory: pytest.TempPathFactory) -> Factory:
    ckpt = init_checkpoint("tiny", tmp_path_factory.mktemp("ckpt") / "tiny")
    make = create_pipeline_factory(str(ckpt), "tiny", "cpu")

    def animation_pipeline() -> AnimationPipeline:
        p = make()
        assert isinstance(p, AnimationPipeline)
        return p

    return animation_pipeline


def _motions(n: int, seed: int = 0) -> list[NormalizedMotion]:
    from realtime.avatars.motion import ProceduralMotion

    gen = ProceduralMotion(seed=seed)
    return [gen.frame(i) for i in range(n)]


def _run(p: AnimationPipeline, motions: list[NormalizedMotion]) -> np.ndarray:
    frames = [f for i, m in enumerate(motions) for f in p.process_motion(m, i, float(i))]
    return np.stack([f.image for f in frames])


def test_sessions_share_weights_but_not_state(factory: Factory) -> None:
    a, b = factory(), factory()
    assert isinstance(a, AnimationPipeline) and isinstance(b, AnimationPipeline)
    assert a.engine.model is b.engine.model
    assert a.engine.cache.k.data_ptr() != b.engine.cache.k.data_ptr()
    motions = _motions(4)
    out_a = _run(a, motions)
    assert out_a.shape == (4, *a.resolution[::-1], 3)
    assert np.array_equal(out_a, _run(b, motions))     # same seed, same motion


def test_frames_carry_ids_and_every_stage(factory: Factory) -> None:
    p = factory()
    motions = _motions(2)
    assert p.process_motion(motions[0], 7, 1.5) == []
    out = p.process_motion(motions[1], 8, 1.6)
    assert [(f.frame_id, f.t_capture) for f in out] == [(7, 1.5), (8, 1.6)]
    for f in out:
        assert {"condition", "model", "decode"} <= set(f.stamps)


def test_character_and_reference_switch_mid_session(factory: Factory) -> None:
    from realtime.avatars import gallery

    names = gallery.names()
    p, q = factory(), factory()
    motions = _motions(6)
    _run(p, motions[:2]), _run(q, motions[:2])
    q.set_character(names[1])
    assert q.character == names[1]
    assert q.engine.pastes_faces            # a built-in character's face, from its reference
    assert q.engine.pastes_hands            # and its hands, in its reference's skin
    assert not np.array_equal(_run(p, motions[2:4]), _run(q, motions[2:4]))
    with pytest.raises(KeyError):
        q.set_character("no-such-character")
    with pytest.raises(ValueError):
        q.set_reference_image(np.zeros((3, 3, 3), np.uint8))
    q.set_reference_image(np.full((64, 48, 3), 200, np.uint8))
    assert q.character is None
    assert not q.engine.pastes_faces        # no face in this upload to fit a head to
    assert not q.engine.pastes_hands
    assert _run(q, motions[4:]).shape[0] == 2           # the session goes on


def test_an_uploaded_picture_is_drawn_where_its_figure_stands(factory: Factory) -> None:
    """An upload of a head-to-hips picture retargets onto the figure it shows, so the
    pose the model is told to draw lines up with the picture; a picture with no
    figure gets the default standing adult. Both prepared off the model stage."""
    from realtime.avatars import gallery
    from realtime.avatars.render import framing_for, render_reference
    from realtime.motion.retarget import default_skeleton

    ada = gallery.get("ada")
    cam = framing_for(ada, "upper")
    truth = ada.skeleton.through(cam.center, cam.zoom)
    p = factory()
    prepared = p.prepare_reference(render_reference(ada, 256, framing=cam))
    assert prepared.skeleton is not None and prepared.head is not None
    p.set_reference_image(prepared)
    assert (p.character, p.framing, p.reference_figure) == (None, None, True)
    # the head fitted to its face gives the hands its skin; its face is not pasted
    assert p.engine.pastes_hands and not p.engine.pastes_faces
    assert abs(p.skeleton.rest_root[1] - truth.rest_root[1]) < 0.25 * truth.torso
    assert p.skeleton.torso > 1.5 * default_skeleton().torso
    assert _run(p, _motions(2)).shape[0] == 2
    p.set_reference_image(np.full((64, 48, 3), 200, np.uint8))     # no one in it
    assert np.array_equal(p.skeleton.body, default_skeleton().body)
    assert p.reference_figure is False
    assert not p.engine.pastes_faces and not p.engine.pastes_hands
    with pytest.raises(ValueError):
        p.prepare_reference(np.zeros((3, 3, 3), np.uint8))


def test_a_character_in_a_close_shot_is_drawn_larger_and_stays_in_the_picture(
        factory: Factory) -> None:
    from realtime.avatars import gallery
    from realtime.avatars.render import framing_for
    from realtime.motion.condition import render_condition
    from realtime.motion.retarget import retarget
    from realtime.training.metrics import FACE_CHANNELS, boxes_from_maps

    # a character of adult proportions (the chibi ones' heads fill their full shot)
    name = min(gallery.names(), key=lambda n: gallery.get(n).head_h)
    p = factory()
    motion = _motions(1)[0]
    boxes = {}
    for framing in ("full", "upper", "face"):
        p.set_character(name, framing)
        assert (p.character, p.framing) == (name, framing)
        # the session's retargeting, drawn finer than the tiny model's 16-pixel maps
        cond = render_condition(retarget(motion, p.skeleton), 96)
        box = boxes_from_maps(torch.from_numpy(cond.pose_maps[None]), FACE_CHANNELS, 96,
                              margin=0.0)[0]
        assert box is not None, framing
        boxes[framing] = box

    def side(b: tuple[int, int, int, int]) -> int:
        return b[1] - b[0]

    # the head grows with the shot's zoom (less than it: strokes have a fixed width)
    zoom = {f: framing_for(gallery.get(name), f).zoom for f in boxes}
    assert side(boxes["full"]) < side(boxes["upper"]) < side(boxes["face"])
    for framing in ("upper", "face"):
        grown = side(boxes[framing]) / side(boxes["full"])
        assert zoom[framing] / 2 < grown <= zoom[framing], (framing, grown, zoom)
    y0, y1, x0, x1 = boxes["face"]                    # and stays in the picture
    assert abs((x0 + x1) / 192 - 0.5) < 0.2 and 0.2 < (y0 + y1) / 192 < 0.8
    with pytest.raises(ValueError, match="framing"):
        p.set_character(name, "knees")
    assert p.framing == "face"                        # a refused change changes nothing


@pytest.mark.slow
def test_camera_frames_without_a_person_still_produce_frames(factory: Factory) -> None:
    pytest.importorskip("mediapipe")
    p = factory()
    try:
        grey = np.full((120, 160, 3), 90, np.uint8)
        out = p.process(grey, 0, 0.0) + p.process(grey, 1, 0.03)
        assert [f.frame_id for f in out] == [0, 1]
        assert "extract" in out[0].stamps
    finally:
        p.close()


def test_prepare_and_generate_on_two_threads_match_process(factory: Factory) -> None:
    """What a session does (prepare on one thread, generate whole chunks on
    another) gives the same frames, ids and stages as `process_motion` in one call."""
    import threading

    offline, split = factory(), factory()
    assert split.chunk == split.engine.cfg.chunk >= 1
    motions = _motions(2 * split.chunk)
    expected = [f for i, m in enumerate(motions) for f in offline.process_motion(m, i, float(i))]

    prepared: list[MotionCondition] = []
    got: list[GeneratedFrame] = []

    def prepare() -> None:
        prepared.extend(split.prepare_motion(m, i, float(i)) for i, m in enumerate(motions))

    def generate() -> None:
        for i in range(0, len(prepared), split.chunk):
            got.extend(split.generate(prepared[i : i + split.chunk]))

    motion_thread = threading.Thread(target=prepare)
    motion_thread.start()
    motion_thread.join()
    model_thread = threading.Thread(target=generate)
    model_thread.start()
    model_thread.join()
    assert [(f.frame_id, f.t_capture) for f in got] == [(f.frame_id, f.t_capture)
                                                        for f in expected]
    assert np.array_equal(np.stack([f.image for f in got]), np.stack([f.image for f in expected]))
    for f in got:
        assert {"condition", "model", "decode"} <= set(f.stamps)


def test_steps_start_at_the_checkpoints_default_and_follow_a_change(factory: Factory) -> None:
    """What a session reports to its client (the web client's steps field shows it)."""
    p = factory()
    assert p.steps == p.engine.cfg.steps
    p.set_steps(1)
    assert p.steps == p.engine.steps == 1
    with pytest.raises(ValueError, match="1..4"):
        p.set_steps(5)
    assert p.steps == 1


def test_serve_steps_sets_the_steps_every_session_starts_at(
        tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from realtime.model.config import get_preset
    from streaming.server import add_arguments, build_factory

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    ckpt = str(init_checkpoint("tiny", tmp_path_factory.mktemp("ckpt") / "tiny"))
    three = build_factory(parser.parse_args(["--checkpoint", ckpt, "--steps", "3"]))
    assert [three().steps for _ in range(2)] == [3, 3]
    default = build_factory(parser.parse_args(["--checkpoint", ckpt]))
    assert default().steps == get_preset("tiny").steps != 3
    with pytest.raises(SystemExit) as refused:
        parser.parse_args(["--steps", "9"])
    assert refused.value.code == 2
    assert "steps must be 1-4, got 9" in capsys.readouterr().err


def test_a_face_sketch_checkpoint_gets_the_sketch_in_its_conditions(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    from realtime.model.bundle import AnimationModel
    from realtime.model.checkpoint import add_face_sketch, save_checkpoint
    from realtime.model.config import get_preset
    from realtime.motion.types import N_POSE_CHANNELS

    ckpt = save_checkpoint(add_face_sketch(AnimationModel.random(get_preset("tiny"), seed=0)),
                           tmp_path_factory.mktemp("ckpt") / "sketch")
    p = create_pipeline_factory(str(ckpt), "tiny", "cpu")()
    assert isinstance(p, AnimationPipeline)
    motions = _motions(2)
    cond = p.condition(motions[0], 0, 0.0)
    assert cond.pose_maps.shape[0] == N_POSE_CHANNELS + 1
    assert cond.pose_maps[-1].max() > 0            # the performer's face is there
    assert len(_run(p, motions)) == 2
