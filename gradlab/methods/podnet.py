"""PODNet: "PODNet: Pooled Outputs Distillation for Small-Tasks Incremental Learning" (Douillard et al., ECCV 2020).

As LT-CIL (Liu et al., ECCV 2022) ``src/approach/podnet.py`` implements it, the version the LT-CIL and DGR
tables report, under the LT-CIL / DGR training protocol.

- network: the backbone without its last ReLU (from the base phase on, as LUCIR) and the local similarity
  classifier (:mod:`gradlab.models.lsc`): ``proxies`` K = 10 per class, cosine similarities s_{c,k},
  class score y^_c = sum_k softmax_k(s_c)_k s_{c,k}, logits z = eta y^ with one learnable eta (init 1,
  shared by all tasks); one block of proxies per task, earlier blocks frozen (``freeze_old``). LT-CIL
  trains PODNet on its own ResNet-32 (no ReLU after the residual additions, zero-padding shortcuts):
  ``model: resnet32_podnet`` (:func:`gradlab.models.resnet_cifar.resnet32_podnet`); ``model: auto`` keeps
  the run's usual network.
- classification loss on z (``lt_cil_nca``):
  + true (the default for ``podnet`` and ``podnet-2stage``; term ``ce``): what LT-CIL trains with, plain
    CE(eta y^, y). Its ``nca()`` subtracts the margin from every logit before an ordinary softmax
    cross-entropy, so the margin cancels (PyCIL's PODNet also trains with CE). ``margin`` and ``hinge``
    then have no effect. This departs from the paper.
  + false (the paper's NCA; term ``nca``), with margin delta = ``margin`` 0.6:
    L = mean_b [ -log( exp(z_by - delta) / sum_{i != y} exp(z_bi) ) ]_+ :
    the margin comes off the target logit only, the target is left out of the denominator, and each
    sample's loss is hinged at 0 (``hinge``); delta is subtracted after eta, as both reference codes do.
  + null (the signature's default) picks the method's reference: true for ``podnet`` and
    ``podnet-2stage`` (LT-CIL's), false for methods built on PODNet from another reference (the SIR
    reconstruction, whose base is the original PODNet).
- from phase 1 on, with N_seen the classes seen after this phase (old + new) and N_new this phase's:
  + lambda_f sqrt(N_seen / N_new) POD-flat    (term ``pod_flat``: mean_b 1 - cos(h_b, h_old_b) on the
    final embedding, the LUCIR less-forget term)
  + lambda_c sqrt(N_seen / N_new) POD-spatial (term ``pod_spatial``, :func:`pod_spatial`) on the outputs
    of the backbone's three stages (``forward_stages``), lambda_f = 1, lambda_c = 3 (LT-CIL's
    ``--pod-spatial-factor``; PyCIL uses 5). The teacher is the frozen model of the previous phase.
- CNN evaluation: argmax of the logits (argmax z = argmax y^ while eta > 0). The run's schedule
  (LT-CIL's step schedule by default), not PODNet's cosine annealing; no NME, no classifier fine-tuning
  stage and no imprinting of the new proxies: LT-CIL has none of them, so none is added here. New
  proxies ~ U(-1/sqrt(d), 1/sqrt(d)).

Probes: the LSC has no bias and one row per proxy, not per class. ``head.weight`` is a per-class view
(class c's K proxies side by side) with the applied gradient on ``.grad``, so ``weight_norm`` and
``grad_applied`` are per class; ``bias_abs`` is skipped. The head's ``logit_row_gradients`` (the hook of
:func:`gradlab.training.row_gradients.row_gradients`) makes ``grad_<term>`` ||grad of the term w.r.t. class
j's proxies|| rather than the linear-head formula (dL/dz)^T F. The method itself does nothing for the probes.

Method args: ``proxies`` (10), ``margin`` (0.6), ``lambda_c`` (3), ``lambda_f`` (1), ``hinge`` (true),
``freeze_old`` (true), ``lt_cil_nca`` (null: true for podnet / podnet-2stage; false gives the paper's NCA).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from gradlab.errors import ConfigError
from gradlab.methods.args import Arg
from gradlab.methods.base import Method, register
from gradlab.methods.distillation import feature_distillation
from gradlab.models.factory import IncrementalNet
from gradlab.models.lsc import LocalSimilarityClassifier
from gradlab.models.resnet_cifar import ResNetCifar, SmallConvNet

#: Methods whose reference is LT-CIL's code: ``lt_cil_nca`` defaults to true (plain CE) for them only.
LT_CIL_METHODS = ("podnet", "podnet-2stage")


# ---------------------------------------------------------------------------- losses
def nca_loss(logits: torch.Tensor, targets: torch.Tensor, margin: float = 0.6, hinge: bool = True) -> torch.Tensor:
    """PODNet's NCA: mean_b [ -(z_by - margin) + log sum_{i != y_b} exp(z_bi) ]_+ (hinge at 0 if ``hinge``).

    With a single class there is no other class to compare with and the loss is 0.
    """
    z = logits.float()
    if z.shape[1] < 2:
        return z.sum() * 0.0
    target = F.one_hot(targets, z.shape[1]).bool()
    positive = z.gather(1, targets[:, None]).squeeze(1) - margin
    negatives = torch.logsumexp(z.masked_fill(target, float("-inf")), dim=1)
    losses = negatives - positive
    return (losses.clamp_min(0.0) if hinge else losses).mean()


def lt_cil_nca_loss(logits: torch.Tensor, targets: torch.Tensor, margin: float = 0.6) -> torch.Tensor:
    """LT-CIL's ``nca()`` as it runs: the margin comes off every logit, then softmax CE (= plain CE)."""
    return F.cross_entropy(logits.float() - margin, targets)


def pod_spatial_vector(fmap: torch.Tensor) -> torch.Tensor:
    """POD-spatial embedding of one stage map (B, C, H, W): h^2 summed over W (B, C*H) and over H (B, C*W),
    concatenated and L2-normalised per sample."""
    squared = fmap.float().pow(2)
    pooled = torch.cat([squared.sum(dim=3).flatten(1), squared.sum(dim=2).flatten(1)], dim=1)
    return F.normalize(pooled, dim=1)


def pod_spatial(maps: list[torch.Tensor], old_maps: list[torch.Tensor]) -> torch.Tensor:
    """Mean over stages of the batch mean of ||v(h) - v(h_old)||_2, v = :func:`pod_spatial_vector`."""
    if len(maps) != len(old_maps) or not maps:
        raise ValueError(f"pod_spatial needs the same non-zero number of maps, got {len(maps)} and {len(old_maps)}")
    total = 0.0
    for new, old in zip(maps, old_maps):
        if new.shape != old.shape:
            raise ValueError(f"pod_spatial: map shapes differ, {tuple(new.shape)} vs {tuple(old.shape)}")
        diff = pod_spatial_vector(new) - pod_spatial_vector(old)
        total = total + torch.linalg.vector_norm(diff, dim=1).mean()
    return total / len(maps)


def distillation_factor(num_seen: int, num_new: int) -> float:
    """sqrt(N_seen / N_new): the adaptive weight of both POD terms (N_seen counts the new classes too)."""
    return math.sqrt(num_seen / num_new)


# ---------------------------------------------------------------------------- the network
class PODOutput(NamedTuple):
    logits: torch.Tensor          # (B, classes seen so far): eta * local similarity
    features: torch.Tensor        # (B, d) the final embedding (no last ReLU)
    stages: tuple                 # the backbone's stage output maps, (B, C_s, H_s, W_s) each


class PODNetModel(IncrementalNet):
    """Backbone (stage maps + embedding in one pass) + local similarity classifier."""

    def forward(self, x: torch.Tensor) -> PODOutput:
        stages, features = self.backbone.forward_stages(x)
        return PODOutput(self.head(features), features, tuple(stages))


def drop_last_relu(backbone: nn.Module) -> nn.Module:
    """Remove the ReLU after the backbone's last block, in place (no weight changes, no random draws):
    the result computes what ``build_backbone(name, last_relu=False)`` computes with the same weights."""
    if isinstance(backbone, ResNetCifar):
        backbone.layers[-1].relu_out = False
    elif isinstance(backbone, SmallConvNet):
        last = backbone.stage_ends[-1] - 1
        if isinstance(backbone.body[last], nn.ReLU):
            backbone.body[last] = nn.Identity()
    else:
        raise ConfigError(f"model: podnet needs a backbone with stage outputs (resnet32, resnet32_podnet or small), "
                          f"got {type(backbone).__name__}")
    return backbone


# ---------------------------------------------------------------------------- the method
@register
class PODNet(Method):
    """PODNet (Douillard et al., ECCV 2020): local similarity classifier + CE as LT-CIL (or NCA), POD distillation."""

    name = "podnet"
    distributed = True      # every loss term is a mean over the batch's images (several ranks: exact)

    args = {"proxies": Arg.integer(10, low=1, help="proxies per class in the local similarity classifier"),
            "margin": Arg.number(0.6, help="NCA margin"),
            "lambda_c": Arg.number(3.0, help="POD-spatial weight"),
            "lambda_f": Arg.number(1.0, help="POD-flat weight"),
            "hinge": Arg.flag(True, help="NCA with a hinge at 0"),
            "freeze_old": Arg.flag(True, help="old classes' proxies frozen"),
            "lt_cil_nca": Arg.flag(None, none="LT-CIL's NCA for podnet and podnet-2stage, the paper's otherwise",
                                   help="LT-CIL's NCA (cross-entropy on margin-shifted logits)")}

    def __init__(self, cfg, **method_args):
        super().__init__(cfg, **method_args)
        if self.lt_cil_nca is None:
            self.lt_cil_nca = self.name in LT_CIL_METHODS
        self.class_term = "ce" if self.lt_cil_nca else "nca"
        self.factor = 0.0

    def build_model(self, backbone: nn.Module) -> nn.Module:
        backbone = drop_last_relu(backbone)
        return PODNetModel(backbone, LocalSimilarityClassifier(backbone.out_dim, self.proxies, self.freeze_old))

    def before_task(self, ctx) -> None:
        num_new = ctx.num_seen - ctx.num_old
        self.factor = distillation_factor(ctx.num_seen, num_new) if ctx.phase > 0 else 0.0
        ctx.phase_log["podnet"] = {"factor": self.factor, "lambda_c": self.lambda_c * self.factor,
                                "lambda_f": self.lambda_f * self.factor}

    def classification_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.lt_cil_nca:
            return lt_cil_nca_loss(logits, targets, self.margin)
        return nca_loss(logits, targets, self.margin, self.hinge)

    def losses(self, batch, out):
        ctx = self.ctx
        terms = {self.class_term: self.classification_loss(out.logits, batch.y)}
        if ctx.phase > 0:
            with torch.no_grad():
                teacher = ctx.teacher(batch.x)
            if self.lambda_f > 0:
                terms["pod_flat"] = self.lambda_f * self.factor * feature_distillation(out.features, teacher.features)
            if self.lambda_c > 0:
                terms["pod_spatial"] = self.lambda_c * self.factor * pod_spatial(out.stages, teacher.stages)
        return terms
