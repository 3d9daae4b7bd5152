"""ResNet-18 from scratch for 224x224 images, as the paper trains on ImageNetSubset, Food-101 and ImageNet-1k
(torchvision's ``resnet18`` without pretrained weights, its classifier removed: a 512-d feature).

``last_relu=False`` drops the ReLU after the very last residual addition (LUCIR, PODNet).
``forward_stages(x) -> (stage_maps, feature)`` gives the four stage outputs for PODNet's distillation.
"""
from __future__ import annotations

import torch
from torch import nn


class _LastBlockWithoutReLU(nn.Module):
    """A torchvision BasicBlock computed without the ReLU after its residual addition."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.block
        out = b.bn2(b.conv2(b.relu(b.bn1(b.conv1(x)))))
        return out + (b.downsample(x) if b.downsample is not None else x)


class ResNet18(nn.Module):
    """torchvision ResNet-18 (7x7 stem, max-pool, 4 stages of 2 BasicBlocks, 64-512 channels), random init."""

    def __init__(self, in_channels: int = 3, last_relu: bool = True):
        super().__init__()
        from torchvision.models import resnet18

        net = resnet18(weights=None)
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
            nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        if not last_relu:
            net.layer4[-1] = _LastBlockWithoutReLU(net.layer4[-1])
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.stages = nn.ModuleList([net.layer1, net.layer2, net.layer3, net.layer4])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out_dim = 512

    def forward_stages(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        maps = []
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return maps, torch.flatten(self.pool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_stages(x)[1]


def resnet18(in_channels: int = 3, last_relu: bool = True) -> ResNet18:
    return ResNet18(in_channels, last_relu)
