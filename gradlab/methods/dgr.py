"""DGR + DAKD: "Gradient Reweighting: Towards Imbalanced Class-Incremental Learning" (He & Zhu, CVPR 2024).

As the official DGR code (JiangpengHe/imbalanced_cil, ``src/approach/DGR.py``) does it, per phase t:

- loss: CE on z + log pi, pi = the phase's class prior (old classes counted by their exemplars, new
  by their full counts: the paper's "regularized softmax"); raw logits at test time. From phase 1 on,
  plus L_kd = lambda_kd * T^2 * DAKD (distribution-aware KD), lambda_kd = lambda_b * sqrt(n_seen / n_new),
  lambda_b = 0.7, T = 2.
- the backbone gets the plain gradient of L_ce + L_kd; only the classifier rows are rewritten (as the
  official ``DGR.train_epoch`` does):
  Phi_j += ||grad_{W_j} L_ce|| (cumulative over the phase), alpha_j = min_{k in G(j)} Phi_k / Phi_j with
  groups old / new (one group in phase 0), r = mean Phi(new) / mean Phi(old), s_old = min(1, r),
  s_new = min(1, gamma r), gamma = exp(-eta n_seen / (n_seen + n_new)), omega_j = alpha_j s_G(j);
  the KD row gradients are scaled by one beta_t = ||(omega_j ||g^ce_j||)_j|| / ||(||g^kd_j||)_{j old}||.
  Biases take the same multipliers; weight decay and momentum act afterwards (in optimizer.step).

Ablation switches (``method_args``): ``reweighting`` none | unified (GR: one group, no task balance) |
decoupled (DGR); ``prior`` true | false; ``distillation`` none | kd (logit KD) | feature (LUCIR-style
cosine on features) | dakd; ``eta``, ``lambda_b``, ``temperature``. Every distillation kind uses the
same weight lambda_kd (x T^2 for the logit kinds), so variants differ only in the form of the loss.
Presets: ``ce``, ``kd``, ``gr``, ``dgr-no-dakd``, ``dgr``.

Epsilon guards the official code lacks (all EPS = 1e-12): the division by Phi_j and by mean Phi(old)
(clamped from below), by the KD row-norm vector (a term with no classifier gradient gets no beta),
by ||k|| and log(C_old) in DAKD (see :mod:`gradlab.methods.distillation`), and log pi of a class with
no training image this phase (memory 0) uses a count of 1 instead of -inf.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from gradlab.methods.args import Arg
from gradlab.methods.base import Method, register
from gradlab.methods.distillation import dakd, feature_distillation, logit_kd
from gradlab.training.row_gradients import step_row_gradients

REWEIGHTINGS = ("none", "unified", "decoupled")
DISTILLATIONS = ("none", "kd", "feature", "dakd")
EPS = 1e-12


def class_balance_ratios(phi: torch.Tensor) -> torch.Tensor:
    """alpha_j = min_k Phi_k / Phi_j within one group (the class with the least cumulative gradient gets 1)."""
    return phi.min() / phi.clamp_min(EPS)


def dgr_row_scales(phi: torch.Tensor, num_old: int, gamma: float, decoupled: bool) -> torch.Tensor:
    """omega_j for every seen class: class-balance ratio times the group's task-balance factor."""
    if not decoupled or num_old == 0:
        return class_balance_ratios(phi)
    old, new = phi[:num_old], phi[num_old:]
    r = new.mean() / old.mean().clamp_min(EPS)
    s_old, s_new = r.clamp(max=1.0), (gamma * r).clamp(max=1.0)
    return torch.cat([class_balance_ratios(old) * s_old, class_balance_ratios(new) * s_new])


@register
class DGR(Method):
    """DGR + DAKD (He & Zhu, CVPR 2024): decoupled gradient reweighting + distribution-aware KD."""

    name = "dgr"
    distributed = True      # every loss term is a mean over the batch's images (several ranks: exact)
    preset = {"reweighting": "decoupled", "prior": True, "distillation": "dakd"}

    args = {"reweighting": Arg.choice(None, REWEIGHTINGS, none="the method's own setting",
                                      help="decoupled (DGR), unified (GR) or none"),
            "prior": Arg.flag(None, none="the method's own setting", help="CE on z + log(class prior)"),
            "distillation": Arg.choice(None, DISTILLATIONS, none="the method's own setting",
                                       help="dakd, kd, feature or none"),
            "eta": Arg.number(1.0, help="gamma = exp(-eta n_seen / (n_seen + n_new))"),
            "lambda_b": Arg.number(0.7, help="KD weight base: lambda_kd = lambda_b sqrt(n_seen / n_new)"),
            "temperature": Arg.number(2.0, above=True, help="KD temperature T")}

    def __init__(self, cfg, **method_args):
        super().__init__(cfg, **method_args)
        for key, value in self.preset.items():          # unset: the variant's own setting
            if getattr(self, key) is None:
                setattr(self, key, value)
        self.distill_term = "feature_kd" if self.distillation == "feature" else "kd"

    # ------------------------------------------------------------------ per-phase constants (official ``train_loop``)
    def before_task(self, ctx) -> None:
        device, num_old, num_seen = ctx.device, ctx.num_old, ctx.num_seen
        full = torch.as_tensor(ctx.scenario.train_counts[:num_seen], dtype=torch.float32, device=device)
        phase_counts = torch.as_tensor(ctx.phase_class_counts(), dtype=torch.float32, device=device)
        self.log_prior = torch.log(phase_counts.clamp_min(1.0) / phase_counts.clamp_min(1.0).sum())
        self.phi = torch.zeros(num_seen, device=device)
        n_seen, n_new = float(full[:num_old].sum()), float(full[num_old:].sum())
        self.gamma = math.exp(-self.eta * n_seen / (n_seen + n_new))
        self.lambda_kd = self.lambda_b * math.sqrt(n_seen / n_new) if num_old else 0.0
        self.lost = full[:num_old] - phase_counts[:num_old]          # k_j = N_j - exemplars_j
        ctx.phase_log["dgr"] = {"gamma": self.gamma, "lambda_kd": self.lambda_kd, "n_seen": n_seen, "n_new": n_new}

    # ------------------------------------------------------------------ the loss (regularized softmax, DAKD)
    def losses(self, batch, out):
        ctx = self.ctx
        logits = out.logits.float()
        terms = {"ce": F.cross_entropy(logits + self.log_prior if self.prior else logits, batch.y)}
        if ctx.phase > 0 and self.distillation != "none":
            with torch.no_grad():
                teacher = ctx.teacher(batch.x)
            old, t = logits[:, :ctx.num_old], teacher.logits.float()
            T2 = self.temperature ** 2
            if self.distillation == "kd":
                terms["kd"] = self.lambda_kd * T2 * logit_kd(old, t, self.temperature)
            elif self.distillation == "dakd":
                terms["kd"] = self.lambda_kd * T2 * dakd(old, t, self.lost, self.temperature)
            else:
                terms["feature_kd"] = self.lambda_kd * feature_distillation(out.features, teacher.features)
        if self.reweighting != "none":
            self.step_grads = step_row_gradients(ctx, terms, out)   # before backward frees the graph
        return terms

    # ------------------------------------------------------------------ the classifier rewrite (official ``DGR.train_epoch``)
    @torch.no_grad()
    def after_backward(self, ctx) -> None:
        if self.reweighting == "none":
            return
        ce = self.step_grads["ce"]
        ce_norms = ce.norms()
        self.phi += ce_norms
        omega = dgr_row_scales(self.phi, ctx.num_old, self.gamma, self.reweighting == "decoupled")
        head = ctx.model.head
        weight_grad = omega[:, None] * ce.weight
        bias_grad = omega * ce.bias
        beta = torch.zeros((), device=ce_norms.device)
        kd = self.step_grads.get("kd")
        if kd is not None:
            num_old = ctx.num_old
            kd_size = torch.linalg.vector_norm(kd.norms()[:num_old])
            beta = torch.linalg.vector_norm(omega * ce_norms) / kd_size.clamp_min(EPS)
            beta = torch.where(kd_size > 0, beta, torch.zeros_like(beta))
            weight_grad[:num_old] += beta * kd.weight[:num_old]
            bias_grad[:num_old] += beta * kd.bias[:num_old]
        head.weight.grad.copy_(weight_grad.to(head.weight.grad.dtype))
        head.bias.grad.copy_(bias_grad.to(head.bias.grad.dtype))
        ctx.extras["row_scales"] = {"ce": omega, "kd": beta}   # published for probes (reweighted norms)


@register
class CE(DGR):
    """CE + memory through the DGR code path (no prior, no reweighting, no distillation)."""

    name = "ce"
    preset = {"reweighting": "none", "prior": False, "distillation": "none"}


@register
class KD(DGR):
    """CE + memory + logit KD (lambda_kd T^2 KL), no prior, no reweighting."""

    name = "kd"
    preset = {"reweighting": "none", "prior": False, "distillation": "kd"}


@register
class GR(DGR):
    """Unified gradient reweighting (one class-balance group, no task balance) + prior + DAKD."""

    name = "gr"
    preset = {**DGR.preset, "reweighting": "unified"}


@register
class DGRWithoutDAKD(DGR):
    """DGR with plain logit KD instead of DAKD (decoupled reweighting + prior)."""

    name = "dgr-no-dakd"
    preset = {**DGR.preset, "distillation": "kd"}
