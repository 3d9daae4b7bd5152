"""ResNet-32 for 32x32 images, as in the official DGR / FACIL code (``resnet32.py``), and the variant
LT-CIL (Liu et al., ECCV 2022) trains PODNet with (its ``resnet32_podnet.py``).

``resnet32``: three stages of 5 BasicBlocks (16/32/64 channels, strides 1/2/2), option-B shortcuts (1x1 conv
+ BN when the shape changes), a ReLU after every residual addition, global average pooling to a 64-d
feature, Kaiming-normal (fan-out) init. No classifier: the incremental head lives in
:mod:`gradlab.models.heads`. ``last_relu=False`` drops the ReLU after the very last block, as LUCIR and
PODNet do.

``resnet32_podnet``: the same stem (3x3 conv 16 + BN + ReLU), widths, depth, pooling, 64-d feature and
init, with two differences: no ReLU after any residual addition (a block is conv-BN-ReLU-conv-BN plus the
shortcut, nothing after the sum; the ReLU between a block's two convs stays), and parameter-free option-A
shortcuts where the shape changes (:class:`ZeroPadShortcut`: every other pixel, the new channels filled with
zeros), hence 2 752 parameters fewer than ``resnet32`` (463 504 against 466 256). ``last_relu`` still decides
the very last block: True (the default) puts a ReLU after the final addition, which is what LT-CIL's network
computes for a linear head (a ReLU on the last stage map before pooling); PODNet drops it, which gives
LT-CIL's PODNet network exactly (stage maps and feature without any ReLU after an addition).

Both backbones also have ``forward_stages(x) -> (stage_maps, feature)``: the output map of each of the
three stages (B x C x H x W; the last one is the final block's output, after its ReLU if ``last_relu``)
and the pooled feature, equal to ``forward(x)``. PODNet's POD-spatial distillation reads the maps.
"""
from __future__ import annotations

from itertools import accumulate

import torch
import torch.nn.functional as F
from torch import nn

SHORTCUTS = ("conv", "pad")


class ZeroPadShortcut(nn.Module):
    """Option-A shortcut, no parameters: keep every ``stride``-th pixel (rows and columns 0, stride, ...)
    and append zero channels up to ``channels`` (the input's channels come first, unchanged)."""

    def __init__(self, in_channels: int, channels: int, stride: int):
        super().__init__()
        if channels < in_channels:
            raise ValueError(f"a zero-padding shortcut cannot reduce channels ({in_channels} -> {channels})")
        self.extra, self.stride = channels - in_channels, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra)) if self.extra else x


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN + shortcut, then a ReLU if ``relu_out``. Where the shape changes the
    shortcut is a 1x1 conv + BN (``shortcut="conv"``, option B) or :class:`ZeroPadShortcut` (``"pad"``)."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1, relu_out: bool = True,
                 shortcut: str = "conv"):
        super().__init__()
        if shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut must be one of {list(SHORTCUTS)}, got {shortcut!r}")
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != channels:
            self.shortcut = (ZeroPadShortcut(in_channels, channels, stride) if shortcut == "pad" else
                             nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride, bias=False),
                                           nn.BatchNorm2d(channels)))
        self.relu_out = relu_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out)) + self.shortcut(x)
        return torch.relu(out) if self.relu_out else out


class ResNetCifar(nn.Module):
    """CIFAR-style ResNet backbone; ``forward`` returns the pooled feature (B, 64).

    ``residual_relu=False`` removes the ReLU after every residual addition but the last block's, which
    ``last_relu`` decides; ``shortcut`` is ``conv`` (option B) or ``pad`` (option A, zero padding).
    """

    def __init__(self, blocks_per_stage: int = 5, in_channels: int = 3, last_relu: bool = True,
                 shortcut: str = "conv", residual_relu: bool = True):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.blocks_per_stage = blocks_per_stage
        layers, width = [], 16
        for stage, (channels, stride) in enumerate([(16, 1), (32, 2), (64, 2)]):
            for i in range(blocks_per_stage):
                last = stage == 2 and i == blocks_per_stage - 1
                relu_out = last_relu if last else residual_relu
                layers.append(BasicBlock(width, channels, stride if i == 0 else 1, relu_out, shortcut))
                width = channels
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out_dim = 64
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.layers(self.stem(x))).flatten(1)

    def forward_stages(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The output map of each stage (16/32/64 channels) and the pooled feature (= ``forward(x)``)."""
        x, stages = self.stem(x), []
        for i, block in enumerate(self.layers, start=1):
            x = block(x)
            if i % self.blocks_per_stage == 0:
                stages.append(x)
        return stages, self.pool(x).flatten(1)


def resnet32(in_channels: int = 3, last_relu: bool = True) -> ResNetCifar:
    return ResNetCifar(5, in_channels, last_relu)


def resnet32_podnet(in_channels: int = 3, last_relu: bool = True) -> ResNetCifar:
    """LT-CIL's PODNet ResNet-32: no ReLU after the residual additions, zero-padding shortcuts."""
    return ResNetCifar(5, in_channels, last_relu, shortcut="pad", residual_relu=False)


class SmallConvNet(nn.Module):
    """Three conv-BN-ReLU layers (16, 32, 64 channels; the last two with stride 2) and average pooling.

    For digits (8x8) and quick CPU runs; ``forward`` returns a 64-d feature.
    """

    def __init__(self, in_channels: int = 3, last_relu: bool = True):
        super().__init__()

        def block(cin, cout, stride, relu=True):
            return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)] + ([nn.ReLU()] if relu else [])

        blocks = [block(in_channels, 16, 1), block(16, 32, 2), block(32, 64, 2, relu=last_relu)]
        self.body = nn.Sequential(*[m for b in blocks for m in b], nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.stage_ends = list(accumulate(len(b) for b in blocks))   # body position just after each block
        self.out_dim = 64
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward_stages(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The output map of each conv block (16/32/64 channels) and the pooled feature (= ``forward(x)``)."""
        stages = []
        for i, module in enumerate(self.body[: self.stage_ends[-1]], start=1):
            x = module(x)
            if i in self.stage_ends:
                stages.append(x)
        return stages, self.body[self.stage_ends[-1]:](x)
