"""HiFi-GAN V2's networks: the generator, and the multi-period and multi-scale discriminators it learns against."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

from models.vocoder.config import VocoderConfig

LRELU_SLOPE = 0.1


def _init(conv: nn.Module) -> nn.Module:
    """HiFi-GAN's N(0, 0.01) initialisation, then weight norm."""
    nn.init.normal_(conv.weight, 0.0, 0.01)
    return weight_norm(conv)


class ResBlock(nn.Module):
    """HiFi-GAN's ResBlock1: per dilation a dilated and an undilated conv, each after a leaky ReLU, plus a skip."""

    def __init__(self, channels: int, kernel: int, dilations: Sequence[int]):
        super().__init__()
        self.dilated = nn.ModuleList(
            _init(nn.Conv1d(channels, channels, kernel, dilation=d, padding=d * (kernel - 1) // 2)) for d in dilations
        )
        self.plain = nn.ModuleList(
            _init(nn.Conv1d(channels, channels, kernel, padding=(kernel - 1) // 2)) for _ in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for dilated, plain in zip(self.dilated, self.plain):
            x = x + plain(F.leaky_relu(dilated(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
        return x


class Generator(nn.Module):
    """(batch, n_mels, frames) log-mel of ``cfg.spec`` to (batch, 1, frames * hop) audio in (-1, 1).

    Each transposed convolution halves the width and is followed by a multi-receptive-field
    fusion: the mean of one ResBlock per kernel size. ``spec`` stays on the module, so whoever
    holds a generator knows which mels it inverts.
    """

    def __init__(self, cfg: VocoderConfig):
        super().__init__()
        self.spec = cfg.spec
        if math.prod(cfg.upsample_rates) != self.spec.hop:
            raise ValueError(f"upsample_rates {cfg.upsample_rates} must multiply to HOP={self.spec.hop} of the {cfg.mel} mel")
        width = cfg.upsample_initial_channel
        self.pre = weight_norm(nn.Conv1d(self.spec.n_mels, width, 7, padding=3))
        self.ups = nn.ModuleList()
        self.mrfs = nn.ModuleList()
        for i, (rate, kernel) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes)):
            channels = width // 2 ** (i + 1)
            up = nn.ConvTranspose1d(2 * channels, channels, kernel, rate, padding=(kernel - rate) // 2)
            self.ups.append(_init(up))
            blocks = zip(cfg.resblock_kernel_sizes, cfg.resblock_dilations)
            self.mrfs.append(nn.ModuleList(ResBlock(channels, k, d) for k, d in blocks))
        self.post = _init(nn.Conv1d(channels, 1, 7, padding=3))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.pre(mel)
        for up, mrf in zip(self.ups, self.mrfs):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            x = sum(block(x) for block in mrf) / len(mrf)
        return torch.tanh(self.post(F.leaky_relu(x)))  # the original uses the default slope here


Outputs = tuple[list[torch.Tensor], list[list[torch.Tensor]]]
"""Per sub-discriminator: its flattened scores and its feature maps (the scores last)."""


class PeriodDiscriminator(nn.Module):
    """2-D convolutions over the waveform folded into rows of ``period`` samples."""

    def __init__(self, period: int, divisor: int):
        super().__init__()
        self.period = period
        widths = [1] + [c // divisor for c in (32, 128, 512, 1024)]
        convs = [nn.Conv2d(a, b, (5, 1), (3, 1), padding=(2, 0)) for a, b in zip(widths, widths[1:])]
        convs.append(nn.Conv2d(widths[-1], widths[-1], (5, 1), padding=(2, 0)))
        self.convs = nn.ModuleList(weight_norm(c) for c in convs)
        self.post = weight_norm(nn.Conv2d(widths[-1], 1, (3, 1), padding=(1, 0)))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = audio[:, None, :]
        if x.shape[-1] % self.period:
            x = F.pad(x, (0, self.period - x.shape[-1] % self.period), "reflect")
        return _score(self.convs, self.post, x.reshape(x.shape[0], 1, -1, self.period))


def _score(convs: nn.ModuleList, post: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A discriminator's flattened scores and every feature map (the last is the score map), for feature matching."""
    fmaps = []
    for conv in convs:
        x = F.leaky_relu(conv(x), LRELU_SLOPE)
        fmaps.append(x)
    x = post(x)
    return x.flatten(1), [*fmaps, x]


class ScaleDiscriminator(nn.Module):
    """Strided grouped 1-D convolutions over the waveform; spectral norm on the raw scale, as in MelGAN."""

    LAYERS = ((1, 128, 15, 1, 1), (128, 128, 41, 2, 4), (128, 256, 41, 2, 16), (256, 512, 41, 4, 16),
              (512, 1024, 41, 4, 16), (1024, 1024, 41, 1, 16), (1024, 1024, 5, 1, 1))  # fmt: skip
    """Per layer: in and out channels, kernel, stride, groups."""

    def __init__(self, divisor: int, spectral: bool):
        super().__init__()
        norm = spectral_norm if spectral else weight_norm
        convs = []
        for c_in, c_out, kernel, stride, groups in self.LAYERS:
            c_in, c_out = max(c_in // divisor, 1), c_out // divisor
            groups = math.gcd(groups, c_in, c_out)  # the paper's groups unless narrowed widths forbid them
            convs.append(norm(nn.Conv1d(c_in, c_out, kernel, stride, padding=kernel // 2, groups=groups)))
        self.convs = nn.ModuleList(convs)
        self.post = norm(nn.Conv1d(c_out, 1, 3, padding=1))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return _score(self.convs, self.post, audio[:, None, :])


class MultiPeriodDiscriminator(nn.Module):
    def __init__(self, cfg: VocoderConfig):
        super().__init__()
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, cfg.disc_width_divisor) for p in cfg.periods)

    def forward(self, audio: torch.Tensor) -> Outputs:
        scores, fmaps = zip(*(d(audio) for d in self.discriminators))
        return list(scores), list(fmaps)


class MultiScaleDiscriminator(nn.Module):
    """Scale discriminators on the waveform average-pooled by 1, 2, 4, ..."""

    def __init__(self, cfg: VocoderConfig):
        super().__init__()
        self.discriminators = nn.ModuleList(
            ScaleDiscriminator(cfg.disc_width_divisor, spectral=i == 0) for i in range(cfg.n_scales)
        )

    def forward(self, audio: torch.Tensor) -> Outputs:
        scores, fmaps = [], []
        for i, d in enumerate(self.discriminators):
            if i:
                audio = F.avg_pool1d(audio[:, None, :], 4, 2, padding=2)[:, 0]
            score, fmap = d(audio)
            scores.append(score)
            fmaps.append(fmap)
        return scores, fmaps


def discriminate(discriminators: nn.ModuleList, audio: torch.Tensor) -> Outputs:
    """The outputs of every sub-discriminator of every discriminator in one pair of lists."""
    scores, fmaps = [], []
    for d in discriminators:
        s, f = d(audio)
        scores += s
        fmaps += f
    return scores, fmaps
