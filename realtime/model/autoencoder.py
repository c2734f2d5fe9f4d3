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
    multiply-adds of a full-resolution head, which dominate the decode on CPU."""

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

    def forward(self, z: torch.Tensor) -> torch.Tensor:   # (N, c, h, w) -> (N, 3, H, W)
        return self.shuffle(self.out(self.ups(self.res(F.silu(self.stem(z))))))


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

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(images)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.decoder(latents).clamp(-1.0, 1.0)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Reconstruction (training)."""
        return self.decoder(self.encoder(images))
