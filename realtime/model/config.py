"""Model configuration: one dataclass, four named presets.

A preset fixes everything the weights' shapes and the cache layout depend on
(resolution, autoencoder, patch, width, depth, heads, chunk K, window W, reference
frames) plus inference defaults (steps, cache-write mode). A checkpoint stores its
config; `realtime.model.checkpoint` refuses weights whose config does not match.

    tiny  tests: 32x32 frames, 2 layers, runs in milliseconds
    cpu   real time on a 2-core CPU: 128x128 frames, 64 tokens per frame, generated
          frame by frame (K=1): a camera frame is answered without waiting for the
          next one, which took 80 ms off the median glass-to-glass latency against
          K=2 (the default checkpoint's model card has the measurement)
    cpu32 the cpu transformer on latents twice as fine (32x32x4, patch 4): the same 64
          tokens per frame, so the same attention and KV cache, where an autoencoder
          keeps 2.3x the expression and finger change (stop 38 of the experiment log)
    gpu   256x256 frames, 256 tokens per frame, bf16
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from kernels.layout import CacheLayout
from realtime.motion.types import FACE_DIM, N_PARTS, N_POSE_CHANNELS

SKETCH_PLANES = 1                           # planes the face sketch adds (render_face_sketch)

CacheWrite = Literal["clean", "last_step"]
"""How a finished chunk writes the KV cache. 'clean': one extra pass over the clean
latents at t=0 (keys/values of what was actually shown). 'last_step': the keys/values
the last denoising step computed (no extra pass). Must match how the student was
trained."""

CACHE_WRITES: tuple[str, ...] = ("clean", "last_step")


@dataclass(frozen=True)
class ModelConfig:
    # frames and autoencoder
    resolution: int = 128                   # square RGB frames, H = W
    latent_channels: int = 4
    ae_widths: tuple[int, ...] = (16, 32, 64)   # encoder stage widths; each halves H, W
    # transformer
    patch: int = 2                          # latent pixels per token side
    width: int = 192                        # C
    depth: int = 4
    heads: int = 3                          # head_dim = width // heads (multiple of 16)
    mlp_ratio: float = 3.0
    pose_hidden: int = 32                   # light pose-map encoder width
    pose_scale: int = 2                     # pose maps at this x the latent size; above 2 a
                                            # strided stage (dit.PoseEncoder) reads the finer
                                            # maps down to 2x, so a finger keeps its pixels
    face_maps: bool = False                 # also paint the face vector onto the head in
                                            # the pose encoder's input (see dit.PoseEncoder);
                                            # False = checkpoints from before it existed
    decoder_motion: bool = False            # the autoencoder's decoder also sees the
                                            # frame's motion planes (autoencoder.Decoder);
                                            # on in `tiny` only: not shown to help (more
                                            # flicker), see the model card
    face_sketch: bool = False               # one more pose plane: the face vector drawn as
                                            # lids, brows and lips on the face's points
                                            # (motion.condition.render_face_sketch); on in
                                            # no preset: a trial, see the model card
    # streaming
    chunk: int = 2                          # K: frames generated together
    window: int = 6                         # W: frames of history in the cache
    ref_frames: int = 1                     # identity sink capacity, in frames
    # inference defaults
    steps: int = 2                          # denoising steps (1-4)
    time_shift: float = 1.0                 # SD3-style timestep shift (1 = uniform)
    cache_write: str = "clean"              # a CacheWrite
    dtype: str = "float32"                  # inference dtype: float32 | bfloat16

    def __post_init__(self) -> None:
        down = self.ae_downsample
        if self.resolution % (down * self.patch):
            raise ValueError(f"resolution {self.resolution} is not a multiple of "
                             f"downsample {down} x patch {self.patch}")
        if self.width % self.heads or (self.width // self.heads) % 16:
            raise ValueError(f"head_dim = width/heads must be a multiple of 16, "
                             f"got {self.width}/{self.heads}")
        if not 1 <= self.chunk <= self.window:
            raise ValueError(f"need 1 <= chunk ({self.chunk}) <= window ({self.window})")
        if not 1 <= self.steps <= 4:
            raise ValueError(f"steps must be in 1..4, got {self.steps}")
        if self.pose_scale < 2 or self.pose_scale % 2:
            raise ValueError(f"pose_scale must be an even number >= 2, got {self.pose_scale}")
        if self.cache_write not in CACHE_WRITES:
            raise ValueError(f"cache_write must be one of {CACHE_WRITES}")

    # --- derived shapes ---------------------------------------------------------

    @property
    def ae_downsample(self) -> int:
        return 2 ** len(self.ae_widths)

    @property
    def latent_size(self) -> int:
        return self.resolution // self.ae_downsample

    @property
    def grid(self) -> tuple[int, int]:
        g = self.latent_size // self.patch
        return (g, g)

    @property
    def tokens_per_frame(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    @property
    def pose_size(self) -> int:
        """Side of the pose maps the condition renderer draws: `pose_scale` x the
        latent resolution (2 as shipped), so thin finger strokes survive (the pose
        encoder pools them)."""
        return self.pose_scale * self.latent_size

    @property
    def pose_channels(self) -> int:
        """Planes of the pose maps: the POSE_CHANNELS, then the face sketch if any."""
        return N_POSE_CHANNELS + (SKETCH_PLANES if self.face_sketch else 0)

    @property
    def face_dim(self) -> int:
        return FACE_DIM

    @property
    def n_parts(self) -> int:
        return N_PARTS

    def layout(self) -> CacheLayout:
        return CacheLayout(sink_frames=self.ref_frames, window=self.window,
                           chunk=self.chunk, grid=self.grid)

    # --- (de)serialisation --------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown model config fields {unknown}: checkpoint from a "
                             f"newer version of the code?")
        d = dict(d)
        if "ae_widths" in d:
            d["ae_widths"] = tuple(d["ae_widths"])
        return cls(**d)

    def with_(self, **changes: Any) -> ModelConfig:
        return replace(self, **changes)


PRESETS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(resolution=32, latent_channels=4, ae_widths=(8, 16), patch=2,
                        width=64, depth=2, heads=2, mlp_ratio=2.0, pose_hidden=8,
                        face_maps=True, decoder_motion=True, chunk=2, window=4, ref_frames=1,
                        steps=2),
    # frame by frame at one step, as the shipped checkpoint streams: two steps gain
    # 0.1 dB but not 30 frames/s on 2 cores (bench/results/latency-cpu-steps-ab.json)
    "cpu": ModelConfig(face_maps=True, chunk=1, steps=1),
    # 128 px through 32x32x4 latents instead of 16x16x4, each token 4x4 latent pixels
    # instead of 2x2 (and pose maps 64 px instead of 32): stop 38's probe trained a
    # fresh autoencoder of each shape 1500 steps on studio128r; on eval's held-out
    # clips this one reconstructs 24.6 dB against 21.4 (face 20.5 against 17.9) and
    # keeps 35 % of an expression change and 34 % of a finger change against 16 % /
    # 15 %, with half the autoencoder's weights and 5.0 ms a decode on one thread
    # against 3.3. Not the shipped checkpoint's: its DiT was trained on 16x16 latents.
    "cpu32": ModelConfig(face_maps=True, chunk=1, steps=1, ae_widths=(24, 48), patch=4),
    "gpu": ModelConfig(resolution=256, latent_channels=8, ae_widths=(32, 64, 128),
                       patch=2, width=768, depth=12, heads=12, mlp_ratio=4.0,
                       pose_hidden=64, face_maps=True, chunk=4,
                       window=12, ref_frames=2, steps=2, dtype="bfloat16"),
}


def get_preset(name: str) -> ModelConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}") from None


def default_preset() -> str:
    """'gpu' where CUDA is present, else 'cpu'."""
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"
