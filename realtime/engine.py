"""`StreamingEngine`: one session's streaming state around a shared model.

The model (DiT + autoencoder weights) is loaded once per process and passed in;
each engine holds only what is per session: its KV cache (identity sink + ring
window), the motion conditions of the chunk being filled, its noise generator and
its settings. Conditions arrive one frame at a time; when K have arrived the chunk
is denoised and decoded, and its K frames come back, each with its input's id,
capture time and stage stamps ('model', 'decode' added to whatever the condition
carried). The chunk's cache write comes after: `settle()` makes it once the frames
have left (a session's model thread calls it after delivering them), else the next
chunk makes it first (stamped 'cache_write' on that chunk's frames). Either way the
stream is the same.

Memory and latency do not depend on the stream's age: the cache is a fixed-size
ring (see `realtime.model.cache`), positions are window-relative.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from realtime.frames import GeneratedFrame
from realtime.model.bundle import AnimationModel
from realtime.model.cache import KVCache
from realtime.model.config import CACHE_WRITES
from realtime.model.face_paste import HeadShape, paste_faces
from realtime.model.hand_paste import paste_hands, skin_colour
from realtime.model.sampler import PendingWrite, denoise_chunk, write_pending
from realtime.motion.types import MotionCondition


def configure_torch_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads; returns the number set.

    Default: $MARIONETTE_TORCH_THREADS if set, else the cores this process may use
    minus one (at least 1). A session also runs MediaPipe, the video codec and the
    event loop; measured on the 2-core machines, two OpenMP threads that must share
    their cores with other work spin-wait and run the DiT many times slower than one
    thread does (bench/results/model-cpu-*.json), so the model leaves a core free.
    """
    if threads is None:
        env = os.environ.get("MARIONETTE_TORCH_THREADS")
        threads = int(env) if env else len(os.sched_getaffinity(0)) - 1
    torch.set_num_threads(max(1, threads))
    return torch.get_num_threads()


def pad_square(img: np.ndarray) -> np.ndarray:
    """Centre an (H, W, 3) image on a square canvas filled with its border's median
    colour: the character keeps its proportions (a resize alone would squash it)."""
    h, w = img.shape[:2]
    if h == w:
        return img
    border = np.concatenate((img[0], img[-1], img[:, 0], img[:, -1]))
    n = max(h, w)
    out = np.empty((n, n, 3), np.uint8)
    out[:] = np.median(border, axis=0).astype(np.uint8)
    y, x = (n - h) // 2, (n - w) // 2
    out[y:y + h, x:x + w] = img
    return out


def check_reference_image(img: Any, i: int = 0) -> None:
    """ValueError unless `img` is an RGB uint8 (H, W, 3) array of at least 8x8."""
    if not (isinstance(img, np.ndarray) and img.ndim == 3 and img.shape[2] == 3
            and img.dtype == np.uint8 and min(img.shape[:2]) >= 8):
        shape = getattr(img, "shape", None)
        raise ValueError(f"reference image {i}: need an RGB uint8 (H, W, 3) array of at "
                         f"least 8x8, got {shape} {getattr(img, 'dtype', type(img))}")


def images_to_tensor(images: list[np.ndarray], size: int, device: torch.device,
                     dtype: torch.dtype) -> torch.Tensor:
    """RGB uint8 (H, W, 3) images -> (N, 3, size, size) in [-1, 1]: padded square,
    area-resized."""
    out = []
    for i, img in enumerate(images):
        check_reference_image(img, i)
        x = torch.from_numpy(pad_square(np.array(img))).permute(2, 0, 1)[None].float()
        x = F.interpolate(x, size=(size, size), mode="area")
        out.append(x / 127.5 - 1.0)
    return torch.cat(out).to(device=device, dtype=dtype)


def tensor_to_images(x: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8."""
    x = ((x.float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


class StreamingEngine:
    def __init__(
        self,
        model: AnimationModel,
        *,
        seed: int = 0,
        steps: int | None = None,
        cache_write: str | None = None,
        face_paste: bool | None = None,
        hand_paste: bool | None = None,
    ) -> None:
        self.model = model
        # paste a built-in character's own face from its reference (set_reference's
        # `head`); off, the frames are as decoded. Default: the model's setting
        self.face_paste = model.face_paste if face_paste is None else face_paste
        # draw a built-in character's hands where the pose's fingers are, in its skin
        # (`realtime.model.hand_paste`); default: the model's setting
        self.hand_paste = model.hand_paste if hand_paste is None else hand_paste
        self._head: HeadShape | None = None
        self._paste_face = True                         # the head places the face too
        self._skin: torch.Tensor | None = None          # (3,) the reference's skin
        self._reference: torch.Tensor | None = None     # (3, S, S) in [-1, 1]
        self.cfg = cfg = model.cfg
        self.device, self.dtype = model.device, model.dtype
        self.seed = seed
        self.steps = cfg.steps
        self.set_steps(steps or cfg.steps)
        self.cache_write = cache_write or cfg.cache_write
        if self.cache_write not in CACHE_WRITES:
            raise ValueError(f"cache_write must be one of {CACHE_WRITES}")
        self.cache = KVCache(cfg.layout(), cfg.depth, cfg.heads, cfg.head_dim,
                             device=self.device, dtype=self.dtype).setup()
        self._pending: list[MotionCondition] = []
        self._generator = torch.Generator(self.device)
        self._generator.manual_seed(seed)
        self.frames_out = 0
        self.last_latents: torch.Tensor | None = None   # the last chunk's (K, c, h, w)
        self._unwritten: PendingWrite | None = None     # the last chunk's cache write

    @property
    def resolution(self) -> tuple[int, int]:
        """(width, height) of the frames it produces."""
        return (self.cfg.resolution, self.cfg.resolution)

    @property
    def pending(self) -> list[MotionCondition]:
        """Conditions of the chunk being filled (fewer than K)."""
        return list(self._pending)

    @property
    def pastes_faces(self) -> bool:
        """Whether frames get the reference's face pasted (a built-in character's
        reference, given with its head, not an upload's; `realtime.model.face_paste`)."""
        return self.face_paste and self._head is not None and self._paste_face

    @property
    def pastes_hands(self) -> bool:
        """Whether frames get the pose's hands drawn in the reference's skin (a reference
        given with its head: a built-in character's, or an upload's fitted to its face;
        `realtime.model.hand_paste`)."""
        return self.hand_paste and self._skin is not None

    @property
    def has_reference(self) -> bool:
        return bool(self.cache.sink_len.any())

    # --- controls ---------------------------------------------------------------------

    def set_reference(self, images: list[np.ndarray], head: HeadShape | None = None,
                      paste_face: bool = True) -> None:
        """Encode 1..ref_frames RGB images into the identity sink. Works mid-stream:
        the window is kept, only the sink changes. ValueError for unusable images.
        `head`: where a built-in character's head is in the first image, for the face
        paste and the hand paste (`realtime.model.face_paste`, `.hand_paste`); None:
        neither. `paste_face` False: the head only finds the skin for the hand paste
        (an upload's, whose fitted head places its face worse than the DiT's blur)."""
        if not 1 <= len(images) <= self.cfg.ref_frames:
            raise ValueError(f"need 1..{self.cfg.ref_frames} reference images, got {len(images)}")
        x = images_to_tensor(images, self.cfg.resolution, self.device, self.dtype)
        self._head, self._reference, self._paste_face = head, x[0], paste_face
        self._skin = None if head is None else skin_colour(x[0], head)
        self.settle()                      # the last chunk attended to the old sink
        with torch.inference_mode():
            latents = self.model.ae.encode(x)[None]            # (1, R, c, h, w)
            ks, vs = self.model.dit.encode_reference(latents)
            self.cache.set_sink(ks, vs)

    def set_steps(self, steps: int) -> None:
        if not 1 <= int(steps) <= 4:
            raise ValueError(f"steps must be in 1..4, got {steps}")
        self.steps = int(steps)

    def reset(self) -> None:
        """A fresh stream with the same reference: empty window, re-seeded noise."""
        self.cache.reset(keep_sink=True)
        self._unwritten = None
        self._pending.clear()
        self._generator.manual_seed(self.seed)

    # --- streaming ----------------------------------------------------------------------

    def settle(self) -> bool:
        """Make the last chunk's cache write now, if it is still to be made (True
        then). Call it when the frames have left, so the next chunk finds it done."""
        pending, self._unwritten = self._unwritten, None
        if pending is None:
            return False
        with torch.inference_mode():
            write_pending(self.model.dit, self.cache, pending)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
        return True

    def push(self, conditions: list[MotionCondition]) -> list[GeneratedFrame]:
        """Add conditions; returns the frames of every chunk they complete (K each)."""
        out: list[GeneratedFrame] = []
        for cond in conditions:
            self._pending.append(cond)
            if len(self._pending) == self.cfg.chunk:
                chunk, self._pending = self._pending, []
                out.extend(self._run_chunk(chunk))
        return out

    def _conditions_to_tensors(
        self, conds: list[MotionCondition]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        P = cfg.pose_size
        pose = torch.from_numpy(np.stack([c.pose_maps for c in conds]).astype(np.float32))
        if pose.shape[1] != cfg.pose_channels:
            raise ValueError(f"pose maps have {pose.shape[1]} channels, the model takes "
                             f"{cfg.pose_channels}")
        if pose.shape[-2:] != (P, P):
            pose = F.interpolate(pose, size=(P, P), mode="area")
        face = torch.from_numpy(np.stack([c.face for c in conds]).astype(np.float32))
        pres = torch.from_numpy(np.stack([c.presence for c in conds]).astype(np.float32))
        dev, dt = self.device, self.dtype
        return (pose[None].to(device=dev, dtype=dt), face[None].to(device=dev, dtype=dt),
                pres[None].to(device=dev, dtype=dt))

    def _run_chunk(self, conds: list[MotionCondition]) -> list[GeneratedFrame]:
        cfg = self.cfg
        stamps: dict[str, tuple[float, float]] = {}
        cpu: dict[str, float] = {}
        if self._unwritten is not None:          # nobody settled the last chunk: now
            w0, c0 = time.monotonic(), time.thread_time()
            self.settle()
            stamps["cache_write"] = (w0, time.monotonic())
            cpu["cache_write"] = (time.thread_time() - c0) * 1e3
        t0, c0 = time.monotonic(), time.thread_time()
        with torch.inference_mode():
            pose, face, presence = self._conditions_to_tensors(conds)
            ls = cfg.latent_size
            noise = torch.randn((1, cfg.chunk, cfg.latent_channels, ls, ls),
                                generator=self._generator, device=self.device,
                                dtype=torch.float32).to(self.dtype)
            res, self._unwritten = denoise_chunk(self.model.dit, self.cache, noise, pose,
                                                 face, presence, self.steps, cfg.time_shift,
                                                 self.cache_write)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            t1, c1 = time.monotonic(), time.thread_time()
            self.last_latents = res.latents[0]
            frames = self.model.ae.decode_driven(res.latents[0], pose[0], face[0], presence[0])
            heads = [c.head for c in conds if c.head is not None]
            if self.pastes_faces and self._head is not None and self._reference is not None \
                    and len(heads) == len(conds):
                frames = paste_faces(frames, self._reference, self._head, face[0],
                                     torch.from_numpy(np.stack(heads)), pose[0])
            hands = [c.hands for c in conds if c.hands is not None]
            if self.hand_paste and self._skin is not None and len(hands) == len(conds):
                frames = paste_hands(frames, self._skin, torch.from_numpy(np.stack(hands)),
                                     presence[0])
            images = tensor_to_images(frames)
        t2, c2 = time.monotonic(), time.thread_time()
        self.frames_out += len(conds)
        # this thread's CPU time: the chunk's whole CPU cost when torch has one intra-op
        # thread (it then computes here, as on the 2-core machines); with more, the
        # pool's threads are not counted; on CUDA it is the host side only
        cpu.update(model=(c1 - c0) * 1e3, decode=(c2 - c1) * 1e3)
        stamps.update(model=(t0, t1), decode=(t1, t2))
        return [GeneratedFrame(c.frame_id, c.t_capture, images[j], {**c.stamps, **stamps},
                               dict(cpu))
                for j, c in enumerate(conds)]
