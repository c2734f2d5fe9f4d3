"""Per-frame convolutional autoencoder: RGB (3, H, W) <-> latents (c, H/d, W/d).

No temporal compression: every output frame decodes from its own latents, so the
engine never waits for a future frame. The shape follows the "tiny autoencoder"
idea of TAESD (madebyollin/taesd): plain 3x3 convolutions, stride-2 downsampling,
nearest-neighbour upsampling, a few channels per stage, a sub-pixel output head, so
decoding a 128x128 frame costs a few milliseconds on a CPU. Images are float in [-1, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from realtime.model.config import ModelConfig
from realtime.model.planes import N_MOTION_PLANES, maps_at, motion_planes
from realtime.motion.types import N_POSE_CHANNELS


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


class ResBlock(nn.Module):
    """x + conv(silu(conv(x))): two 3x3 convolutions at one resolution."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = _conv(c, c)
        self.conv2 = _conv(c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.conv1(x)))


class Encoder(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        w = cfg.ae_widths
        self.stem = _conv(3, w[0])
        stages: list[nn.Module] = []
        for i, c in enumerate(w):
            cout = w[i + 1] if i + 1 < len(w) else c
            stages += [_conv(c, cout, stride=2), nn.SiLU(), ResBlock(cout)]
        self.stages = nn.Sequential(*stages)
        self.out = _conv(w[-1], cfg.latent_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:   # (N, 3, H, W) -> (N, c, h, w)
        return self.out(self.stages(F.silu(self.stem(x))))


class Decoder(nn.Module):
    """Nearest-upsample + conv stages; the last 2x comes from a sub-pixel conv
    (a conv to 3 x 2 x 2 channels at half resolution, then PixelShuffle, as in
    ESPCN), so no convolution runs at full output resolution: about half the
    multiply-adds of a full-resolution head, which dominate the decode on CPU.

    With `cfg.decoder_motion` the decoder also reads the frame's motion planes
    (`realtime.model.planes.motion_planes`: pose maps and the face painted on the
    head, at the pose maps' resolution): a 3x3 conv of them; then at each upsampling
    stage a 3x3 conv reads them beside the stage's own features (where the latents
    put the face, which way it looks) and a 1x1 conv (zero at init) adds the result
    before the stage's activation. At 128 px
    through 16x16x4 latents an expression or a finger's bend barely survives
    encode/decode (the model card measures how little); the motion that drives the
    frame is known whenever a frame is decoded, so the decoder can draw those small
    parts from it while the latents carry identity, body and colour. No new input
    is needed: these are the condition maps the DiT already reads.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        w = cfg.ae_widths[::-1]                              # widest first
        self.stem = _conv(cfg.latent_channels, w[0])
        self.res = ResBlock(w[0])
        ups: list[nn.Module] = []
        for i in range(len(w) - 1):
            ups += [nn.Upsample(scale_factor=2, mode="nearest"), _conv(w[i], w[i + 1]),
                    nn.SiLU()]
        self.ups = nn.Sequential(*ups)
        self.out = _conv(w[-1], 3 * 4)
        self.shuffle = nn.PixelShuffle(2)
        self.motion = cfg.decoder_motion
        if self.motion:
            self.motion_in = _conv(N_MOTION_PLANES, cfg.pose_hidden)
            self.motion_fuse = nn.ModuleList(_conv(c + cfg.pose_hidden, c) for c in w[1:])
            self.motion_out = nn.ModuleList(nn.Conv2d(c, c, 1) for c in w[1:])

    def forward(self, z: torch.Tensor, planes: torch.Tensor | None = None) -> torch.Tensor:
        """(N, c, h, w) latents [, (N, N_MOTION_PLANES, P, P) motion planes; None: no
        motion known, all zero] -> (N, 3, H, W)."""
        h = self.res(F.silu(self.stem(z)))
        m = None
        if self.motion:
            if planes is None:
                planes = z.new_zeros(z.shape[0], N_MOTION_PLANES, 2 * z.shape[-2],
                                     2 * z.shape[-1])
            m = F.silu(self.motion_in(planes.to(z.dtype)))
        for i in range(0, len(self.ups), 3):
            up, conv, act = self.ups[i], self.ups[i + 1], self.ups[i + 2]
            h = conv(up(h))
            if m is not None:
                if m.shape[-2:] != h.shape[-2:]:
                    m = F.interpolate(m, size=h.shape[-2:], mode="nearest")
                fused = F.silu(self.motion_fuse[i // 3](torch.cat((h, m), dim=1)))
                h = h + self.motion_out[i // 3](fused)
            h = act(h)
        return self.shuffle(self.out(h))


class TinyAutoencoder(nn.Module):
    """encode: images in [-1, 1] -> latents; decode: latents -> images in [-1, 1]."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """Variance-preserving (He) init, zero biases, residual branches scaled down:
        even untrained, encode/decode carry the input's variation through every
        stage instead of washing it out (PyTorch's default conv init shrinks it
        layer by layer), so a random-init checkpoint still shows its inputs."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)  # type: ignore[arg-type]
            if isinstance(m, ResBlock):
                m.conv2.weight.data.mul_(0.5)
        if self.decoder.motion:    # motion enters at zero: the same decoder as without
            for conv in self.decoder.motion_out.modules():
                if isinstance(conv, nn.Conv2d):
                    nn.init.zeros_(conv.weight)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images)

    def decode(self, latents: torch.Tensor, planes: torch.Tensor | None = None,
               ) -> torch.Tensor:
        """latents (N, c, h, w) [+ the frames' motion planes (N, N_MOTION_PLANES, P, P),
        see `Decoder`; ignored by a decoder without motion] -> images in [-1, 1]."""
        return self.decoder(latents, planes).clamp(-1.0, 1.0)

    def decode_driven(self, latents: torch.Tensor, pose: torch.Tensor, face: torch.Tensor,
                      presence: torch.Tensor) -> torch.Tensor:
        """`decode` of frames driven by the conditions pose (N, 16, P, P), face
        (N, FACE_DIM), presence (N, N_PARTS): what the engine and eval call. Maps finer
        than twice the latent size (a model at `pose_scale` 4) are averaged down to it,
        the size the decoder is trained on, as the DiT's own pose encoder does."""
        if not self.cfg.decoder_motion:
            return self.decode(latents)
        pose = maps_at(pose[:, :N_POSE_CHANNELS], 2 * latents.shape[-1])   # not the sketch
        return self.decode(latents, motion_planes(pose, face, presence))

    def forward(self, images: torch.Tensor, planes: torch.Tensor | None = None,
                ) -> torch.Tensor:
        """Reconstruction (training)."""
        return self.decoder(self.encoder(images), planes)
