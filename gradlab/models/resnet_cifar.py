"""ResNet-32 for 32x32 images, as in the official DGR / FACIL code (``resnet32.py``).

Three stages of 5 BasicBlocks (16/32/64 channels, strides 1/2/2), option-B shortcuts (1x1 conv + BN
when the shape changes), global average pooling to a 64-d feature, Kaiming-normal init. No classifier:
the incremental head lives in :mod:`gradlab.models.heads`. ``last_relu=False`` drops the ReLU after the
very last block, as LUCIR and PODNet do.

Both backbones also have ``forward_stages(x) -> (stage_maps, feature)``: the output map of each of the
three stages (B x C x H x W; the last one is the final block's output, after its ReLU if ``last_relu``)
and the pooled feature, equal to ``forward(x)``. PODNet's POD-spatial distillation reads the maps.
"""
from __future__ import annotations

from itertools import accumulate

import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, channels: int, stride: int = 1, relu_out: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != channels:  # option B
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride, bias=False),
                                          nn.BatchNorm2d(channels))
        self.relu_out = relu_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out)) + self.shortcut(x)
        return torch.relu(out) if self.relu_out else out


class ResNetCifar(nn.Module):
    """CIFAR-style ResNet backbone; ``forward`` returns the pooled feature (B, 64)."""

    def __init__(self, blocks_per_stage: int = 5, in_channels: int = 3, last_relu: bool = True):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.blocks_per_stage = blocks_per_stage
        layers, width = [], 16
        for stage, (channels, stride) in enumerate([(16, 1), (32, 2), (64, 2)]):
            for i in range(blocks_per_stage):
                last = stage == 2 and i == blocks_per_stage - 1
                layers.append(BasicBlock(width, channels, stride if i == 0 else 1, relu_out=last_relu or not last))
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
