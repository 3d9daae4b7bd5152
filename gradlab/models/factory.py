"""Backbones by name and the incremental network (backbone + growing head)."""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from gradlab.models.heads import IncrementalLinear
from gradlab.models.resnet_cifar import SmallConvNet, resnet32

BACKBONES = {"resnet32": resnet32, "small": SmallConvNet}


def default_backbone(scenario: str) -> str:
    """ResNet-32 for 32x32 sources (the paper's CIFAR network), the small net for 8x8 digits."""
    return "small" if scenario == "digits" else "resnet32"


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
