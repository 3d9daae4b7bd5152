"""Backbones by name and the incremental network (backbone + growing head)."""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from gradlab.data.sources import SOURCE_INFO
from gradlab.models.heads import IncrementalLinear
from gradlab.models.resnet_cifar import SmallConvNet, resnet32, resnet32_podnet
from gradlab.models.resnet_imagenet import resnet18

BACKBONES = {"resnet32": resnet32, "resnet32_podnet": resnet32_podnet, "resnet18": resnet18, "small": SmallConvNet}


def default_backbone(scenario: str) -> str:
    """What ``model: auto`` picks: ResNet-32 for 32x32 RGB sources (the paper's CIFAR network); ResNet-18
    from scratch for the 224x224 photo sources (ImageNet, Food-101, as the paper); the small three-layer CNN
    for the grey 8x8 digits and 28x28 Fashion-MNIST, whose 10 classes a 64-d feature separates well and which
    trains a multi-seed figure set on two CPU cores in minutes (ResNet-32 is an order of magnitude slower
    there; timings: benchmarks/README.md)."""
    return SOURCE_INFO[scenario].model


def build_backbone(name: str, in_channels: int = 3, last_relu: bool = True) -> nn.Module:
    if name not in BACKBONES:
        raise ValueError(f"model must be one of {sorted(BACKBONES)}, got {name!r}")
    return BACKBONES[name](in_channels=in_channels, last_relu=last_relu)


class ModelOutput(NamedTuple):
    logits: torch.Tensor     # (B, classes seen so far)
    features: torch.Tensor   # (B, d) penultimate features


class IncrementalNet(nn.Module):
    """Backbone + head; ``forward`` gives logits and features in one pass."""

    def __init__(self, backbone: nn.Module, head: nn.Module | None = None):
        super().__init__()
        self.backbone = backbone
        self.head = head if head is not None else IncrementalLinear(backbone.out_dim)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        features = self.backbone(x)
        return ModelOutput(self.head(features), features)
