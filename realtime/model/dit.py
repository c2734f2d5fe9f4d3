"""The student: a causal, chunked Diffusion Transformer predicting flow velocity.

Read top to bottom, in the order of facebookresearch/DiT's models.py (helpers ->
embedders -> block -> final layer -> model); the code is our own.

Tokens: each frame's latents (c, h, w) are cut into p x p patches -> T = (h/p)(w/p)
tokens of width C. Conditioning:
  - pose maps (16, P, P) go through a light conv encoder to the token grid and are
    added to the noisy tokens (spatial control); with `face_maps` the encoder also
    sees the face vector painted onto the head strokes, so the expression is
    spatial too;
  - per frame, flow time t + face/expression vector + per-part presence flags form a
    vector c (B, F, C) that modulates every block through adaLN-Zero. A part whose
    presence is 0 contributes a learned "unknown" embedding, not a zero feature.
Attention of a chunk sees the identity sink + the last W frames + the chunk itself
(bidirectional inside the chunk) through `kernels.attention.chunk_attention`; every
adaLN-modulated norm goes through `kernels.norm.adaln_norm`.

Shapes: B batch (sessions), F frames, T tokens per frame, L = F*T, C width,
H heads, D head dim, c latent channels.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from kernels.attention import chunk_attention
from kernels.layout import sink_positions
from kernels.norm import adaln_norm
from kernels.rope import apply_rope_ref
from realtime.model.cache import KVCache
from realtime.model.config import ModelConfig
from realtime.model.planes import FACE_PART, maps_at, motion_planes

AttendFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor]
"""(q, k, v, layer) -> out, each (B, H, L, D): how a block's tokens see their context."""
Motion = tuple[torch.Tensor | None, torch.Tensor]
"""`StudentDiT.embed_motion`'s output: pose tokens (or None), motion conditioning."""

# --- helpers ---------------------------------------------------------------------------


def gate(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Multiply tokens x (B, L, C) by a per-frame gate g (B, F, C)."""
    B, L, C = x.shape
    Fr = g.shape[1]
    return (x.view(B, Fr, L // Fr, C) * g[:, :, None]).view(B, L, C)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of flow times t (...,) in [0, 1] -> (..., dim). Times are
    scaled by 1000 so the ladder of frequencies resolves small steps."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = (t.float() * 1000.0)[..., None] * freqs
    return torch.cat((args.cos(), args.sin()), dim=-1)


FINE_PLANES = 16     # planes the finer pose maps add (PoseEncoder, pose_scale > 2)


# --- embedders --------------------------------------------------------------------------


class PatchEmbed(nn.Module):
    """Latents (B, F, c, h, w) -> tokens (B, F*T, C), token p = y * grid_w + x."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(cfg.latent_channels, cfg.width, cfg.patch, stride=cfg.patch)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        B, Fr = z.shape[:2]
        x = self.proj(z.flatten(0, 1))                          # (B*F, C, gh, gw)
        return x.flatten(2).transpose(1, 2).reshape(B, -1, x.shape[1])


class PoseEncoder(nn.Module):
    """Pose maps (B, F, 16, P, P) -> tokens (B, F*T, C): a 3x3 conv at map resolution,
    then a strided conv that pools each token's P/grid square.

    With `cfg.face_maps` the conv also sees the face vector painted onto the head
    (`realtime.model.planes.motion_planes`: FACE_DIM more planes). Through adaLN alone
    the face vector is one modulation for every token of the frame; here it also
    arrives in the head's own tokens, where "mouth open" has to become pixels.

    With `cfg.face_sketch` the maps hold one more plane after the 16, the face vector
    drawn as lids, brows and lips where the face's points are
    (`realtime.motion.condition.render_face_sketch`).

    With `cfg.pose_scale` above 2 the maps are drawn finer and a stride-(scale/2) conv
    (`fine`) first brings them to twice the latent size: its first 16 planes start as
    an average of each map over its square (the maps at scale 2, on which the face is
    painted as before), and FINE_PLANES more, which the 3x3 conv starts reading at
    zero weight, are what it can learn from the finer strokes (at scale 2 a finger of
    a hand 10 px wide is a pixel or two). Maps finer than the model's (a teacher given
    its student's) are first averaged down to its size; coarser ones are refused.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.size = cfg.pose_size
        s = 2 * cfg.patch      # the maps at scale 2: each token's square of them
        self.face_maps = cfg.face_maps
        self.channels = cfg.pose_channels
        planes = cfg.pose_channels + (cfg.face_dim if cfg.face_maps else 0)
        self.fine: nn.Conv2d | None = None
        if cfg.pose_scale > 2:
            r = cfg.pose_scale // 2
            self.fine = nn.Conv2d(cfg.pose_channels, cfg.pose_channels + FINE_PLANES, r,
                                  stride=r)
            planes += FINE_PLANES
        self.conv = nn.Conv2d(planes, cfg.pose_hidden, 3, padding=1)
        self.pool = nn.Conv2d(cfg.pose_hidden, cfg.width, s, stride=s)
        if self.fine is not None:
            self.initialize_fine()

    @torch.no_grad()
    def initialize_fine(self) -> None:
        """`fine` as an average pool of each map, plus FINE_PLANES (random) that the
        3x3 conv reads at zero weight: on finer maps the same function as at scale 2
        on those maps averaged down, and a path the gradient reaches."""
        assert self.fine is not None
        n, r = self.fine.in_channels, self.fine.kernel_size[0]
        self.fine.weight[:n].zero_()
        self.fine.weight[:n, :n] += torch.eye(n)[:, :, None, None] / (r * r)
        bias = self.fine.bias
        assert bias is not None
        bias[:n].zero_()
        self.conv.weight[:, -FINE_PLANES:].zero_()

    def forward(self, maps: torch.Tensor, face: torch.Tensor, presence: torch.Tensor,
                ) -> torch.Tensor:
        """maps (B, F, 16 [+ the sketch], P, P), face (B, F, FACE_DIM), presence
        (B, F, N_PARTS)."""
        B = maps.shape[0]
        # a model without the face sketch reads the maps of one with it (a teacher,
        # its student's clips) as its own: the sketch plane comes last
        x = maps_at(maps[:, :, :self.channels].flatten(0, 1), self.size)
        finer = None
        if self.fine is not None:       # the maps at scale 2, then what finer strokes add
            x, finer = self.fine(x).split((self.fine.in_channels, FINE_PLANES), dim=1)
        if self.face_maps:              # painted at scale 2, as a model without `fine` does
            x = motion_planes(x, face.flatten(0, 1), presence.flatten(0, 1))
        if finer is not None:
            x = torch.cat((x, finer), dim=1)
        x = self.pool(F.silu(self.conv(x)))                     # (B*F, C, gh, gw)
        return x.flatten(2).transpose(1, 2).reshape(B, -1, x.shape[1])


class TimestepEmbedder(nn.Module):
    """Flow time t (B, F) -> (B, F, C)."""

    def __init__(self, width: int, freq_dim: int = 256) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.fc1 = nn.Linear(freq_dim, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        emb = timestep_embedding(t, self.freq_dim).to(self.fc1.weight.dtype)
        return self.fc2(F.silu(self.fc1(emb)))


class MotionEmbedder(nn.Module):
    """Face vector (B, F, 12) and presence (B, F, 4) -> (B, F, C).

    face:     presence_face * mlp(face) + (1 - presence_face) * null_face
    presence: a linear map, i.e. per part p a learned vector for "present" and one
              for "unknown", blended by the flag: a missing hand is not a still hand.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.face_mlp = nn.Sequential(nn.Linear(cfg.face_dim, cfg.width), nn.SiLU(),
                                      nn.Linear(cfg.width, cfg.width))
        self.null_face = nn.Parameter(torch.zeros(cfg.width))
        self.presence = nn.Linear(cfg.n_parts, cfg.width)
        self.face_part = FACE_PART

    def forward(self, face: torch.Tensor, presence: torch.Tensor) -> torch.Tensor:
        pf = presence[..., self.face_part, None]                # (B, F, 1)
        face_emb = pf * self.face_mlp(face) + (1 - pf) * self.null_face
        return face_emb + self.presence(presence)


# --- block ------------------------------------------------------------------------------


def _rms(norm: nn.RMSNorm, x: torch.Tensor) -> torch.Tensor:
    """`norm(x)` with the weight in x's dtype. Under bf16 autocast (training on CUDA)
    the linear layers hand bf16 to a float32 weight, which sends `rms_norm` to its
    unfused path (a chain of elementwise kernels, and a warning); the cast is of
    head_dim numbers and keeps the gradient. Unchanged wherever the dtypes agree."""
    w = norm.weight
    return F.rms_norm(x, norm.normalized_shape, None if w is None else w.to(x.dtype), norm.eps)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.heads, self.head_dim = cfg.heads, cfg.head_dim
        self.qkv = nn.Linear(cfg.width, 3 * cfg.width)
        # QK-norm keeps attention logits bounded in bf16 (as in SD3 / many DiTs)
        self.q_norm = nn.RMSNorm(cfg.head_dim, eps=1e-6)
        self.k_norm = nn.RMSNorm(cfg.head_dim, eps=1e-6)
        self.proj = nn.Linear(cfg.width, cfg.width)

    def qkv_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, L, C) -> q, k, v each (B, H, L, D), q and k normalised, un-rotated."""
        B, L, _ = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return _rms(self.q_norm, q), _rms(self.k_norm, k), v

    def out(self, o: torch.Tensor) -> torch.Tensor:
        B, H, L, D = o.shape
        return self.proj(o.transpose(1, 2).reshape(B, L, H * D))


class DiTBlock(nn.Module):
    """Pre-norm attention + MLP, each adaLN-Zero modulated and gated per frame."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        C = cfg.width
        self.attn = Attention(cfg)
        hidden = int(C * cfg.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(C, hidden), nn.GELU(approximate="tanh"),
                                 nn.Linear(hidden, C))
        self.ada = nn.Linear(C, 6 * C)

    def forward(
        self, x: torch.Tensor, c: torch.Tensor, attend: AttendFn, layer: int,
        kv_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, L, C), c (B, F, C) -> (x, k, v); with kv_only, x is returned unchanged
        (the caller needs only this layer's keys/values)."""
        sh1, sc1, g1, sh2, sc2, g2 = self.ada(F.silu(c)).chunk(6, dim=-1)   # (B, F, C) each
        q, k, v = self.attn.qkv_heads(adaln_norm(x, sh1, sc1))
        if kv_only:
            return x, k, v
        x = x + gate(self.attn.out(attend(q, k, v, layer)), g1)
        x = x + gate(self.mlp(adaln_norm(x, sh2, sc2)), g2)
        return x, k, v


# --- final layer ------------------------------------------------------------------------


class FinalLayer(nn.Module):
    """adaLN norm + linear: tokens (B, L, C) -> velocity patches (B, L, p*p*c)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.ada = nn.Linear(cfg.width, 2 * cfg.width)
        self.linear = nn.Linear(cfg.width, cfg.patch * cfg.patch * cfg.latent_channels)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.ada(F.silu(c)).chunk(2, dim=-1)
        return self.linear(adaln_norm(x, shift, scale))


# --- model ------------------------------------------------------------------------------


class StudentDiT(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.patch_embed = PatchEmbed(cfg)
        self.pose_encoder = PoseEncoder(cfg)
        self.t_embed = TimestepEmbedder(cfg.width)
        self.motion_embed = MotionEmbedder(cfg)
        self.ref_embed = nn.Parameter(torch.zeros(cfg.width))   # marks reference frames
        self.blocks = nn.ModuleList(DiTBlock(cfg) for _ in range(cfg.depth))
        self.final = FinalLayer(cfg)
        self.initialize_weights()

    def initialize_weights(self, zero_init: bool = True) -> None:
        """Xavier linears; with `zero_init` (training from scratch) the adaLN
        modulations and the output layer start at zero, so every block starts as
        the identity and the model as "velocity 0" (DiT's adaLN-Zero). Without it
        (random-init checkpoints for tests and benchmarks) they get small random
        weights, so every input path visibly changes the output."""
        def _init(m: nn.Module) -> None:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        self.apply(_init)
        nn.init.normal_(self.t_embed.fc1.weight, std=0.02)
        nn.init.normal_(self.t_embed.fc2.weight, std=0.02)
        nn.init.normal_(self.ref_embed, std=0.02)
        nn.init.normal_(self.motion_embed.null_face, std=0.02)
        heads: list[nn.Linear] = [b.ada for b in self.blocks]      # type: ignore[misc]
        heads += [self.final.ada, self.final.linear]
        for lin in heads:
            if zero_init:
                nn.init.zeros_(lin.weight)
            else:       # O(1) gates: every path's effect shows in decoded pixels
                nn.init.normal_(lin.weight, std=self.cfg.width ** -0.5)
            nn.init.zeros_(lin.bias)

    # --- pieces shared by every forward --------------------------------------------

    def embed_motion(
        self,
        pose: torch.Tensor | None,      # (B, F, 16, P, P) pose maps, None for references
        face: torch.Tensor,             # (B, F, 12)
        presence: torch.Tensor,         # (B, F, 4)
        dtype: torch.dtype,
    ) -> Motion:
        """The frames' motion as `embed` adds it: pose tokens (B, F*T, C) (None without
        maps) and the motion part of the conditioning (B, F, C). It is the same at
        every denoising step of a chunk, so a sampler computes it once per chunk."""
        tokens = None if pose is None else self.pose_encoder(pose.to(dtype), face, presence)
        return tokens, self.motion_embed(face.to(dtype), presence.to(dtype))

    def embed(
        self,
        latents: torch.Tensor,          # (B, F, c, h, w) noisy (or clean) latents
        t: torch.Tensor,                # (B, F) flow time, 1 = noise, 0 = clean
        pose: torch.Tensor | None,      # (B, F, 16, P, P) pose maps, None for references
        face: torch.Tensor,             # (B, F, 12)
        presence: torch.Tensor,         # (B, F, 4)
        is_reference: bool = False,
        motion: Motion | None = None,   # `embed_motion` of these pose, face, presence
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """-> tokens (B, F*T, C), per-frame conditioning (B, F, C)."""
        x = self.patch_embed(latents)
        tokens, c_motion = motion or self.embed_motion(pose, face, presence, x.dtype)
        if tokens is not None:
            x = x + tokens
        c = self.t_embed(t) + c_motion
        if is_reference:
            c = c + self.ref_embed
        return x, c

    def run_blocks(
        self, x: torch.Tensor, c: torch.Tensor, attend: AttendFn, kv_only: bool = False,
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """All blocks -> (tokens, per-layer k, per-layer v). With kv_only the last
        block stops after its keys/values (what a cache write needs)."""
        ks, vs = [], []
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            x, k, v = block(x, c, attend, i, kv_only=kv_only and i == last)
            ks.append(k)
            vs.append(v)
        return x, ks, vs

    def unpatchify(self, out: torch.Tensor, frames: int) -> torch.Tensor:
        """(B, F*T, p*p*c) -> (B, F, c, h, w)."""
        cfg = self.cfg
        B = out.shape[0]
        (gh, gw), p, ch = cfg.grid, cfg.patch, cfg.latent_channels
        x = out.view(B, frames, gh, gw, p, p, ch).permute(0, 1, 6, 2, 4, 3, 5)
        return x.reshape(B, frames, ch, gh * p, gw * p)

    # --- streaming ----------------------------------------------------------------

    def forward_chunk(
        self,
        latents: torch.Tensor,          # (B, K, c, h, w)
        t: torch.Tensor,                # (B, K)
        pose: torch.Tensor,             # (B, K, 16, P, P)
        face: torch.Tensor,             # (B, K, 12)
        presence: torch.Tensor,         # (B, K, 4)
        cache: KVCache,
        kv_only: bool = False,
        motion: Motion | None = None,   # `embed_motion(pose, face, presence)`, if known
    ) -> tuple[torch.Tensor | None, list[torch.Tensor], list[torch.Tensor]]:
        """One chunk against the cache -> (velocity (B, K, c, h, w) or None with
        kv_only, per-layer chunk keys, values (B, H, K*T, D)). Does not write the cache."""
        layout = cache.layout
        rope = cache.chunk_rope()                       # computed once per chunk

        def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, i: int) -> torch.Tensor:
            kc, vc = cache.layer(i)
            return chunk_attention(q, k, v, kc, vc, cache.sink_len, cache.ring_start,
                                   cache.window_len, cache.frame_pos, layout, rope=rope)

        x, c = self.embed(latents, t, pose, face, presence, motion=motion)
        x, ks, vs = self.run_blocks(x, c, attend, kv_only=kv_only)
        if kv_only:
            return None, ks, vs
        return self.unpatchify(self.final(x, c), latents.shape[1]), ks, vs

    def encode_reference(
        self, ref_latents: torch.Tensor,    # (B, R, c, h, w) clean reference latents
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The identity sink: reference frames through the same blocks at t = 0,
        attending (bidirectionally) only to each other, all at temporal position 0.
        -> per-layer keys, values (B, H, R*T, D), un-rotated, for `KVCache.set_sink`."""
        B, R = ref_latents.shape[:2]
        pos = sink_positions(R, self.cfg.grid, ref_latents.device).float()

        def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, i: int) -> torch.Tensor:
            return F.scaled_dot_product_attention(apply_rope_ref(q, pos), apply_rope_ref(k, pos), v)

        zeros = ref_latents.new_zeros
        t0 = torch.zeros(B, R, device=ref_latents.device)
        x, c = self.embed(ref_latents, t0, None, zeros(B, R, self.cfg.face_dim),
                          zeros(B, R, self.cfg.n_parts), is_reference=True)
        _, ks, vs = self.run_blocks(x, c, attend, kv_only=True)
        return ks, vs
