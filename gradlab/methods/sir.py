"""SIR (reconstruction from the abstract): "Self-Paced Imbalance Rectification for Class Incremental
Learning" (Liu, Zhu, Cao; arXiv 2202.03703).

**This is not the authors' method.** Neither their code nor their formulas are public (their repository,
Johanan528/SIR, holds only a README and two images). What follows is our reading of the abstract's
three parts; every formula and every default is a guess. Report it as "SIR (reconstruction from the
abstract)", never as SIR's numbers.

Base learner: PODNet (:mod:`gradlab.methods.podnet`; the results figure shows SIR_P "on PODNet"), with
all its switches. SIR changes only the logits fed to PODNet's classification loss (NCA, or CE with
``lt_cil_nca``) during training; prediction uses the raw logits. For a training sample with label y:

    z~_j = z_j + a_j * o_j  +  [y new] * [j old] * beta * S_{y,j}

- frequency compensation (FCS, ``fcs``): o_j = tau log(n_j / N), a logit adjustment, with n_j = the
  mean training count of class j's group (old classes: their exemplars; new classes: their full counts;
  at least 1) and N = sum_j n_j (``group``, the default: the abstract's "logits margin between old and
  new classes with the corresponding number ratio" taken literally), or n_j = class j's own count
  (``class``, an alternative reading, which also adjusts for the long tail inside each group). Either way
  the margin between a new class c and an old class k, o_c - o_k = tau log(n_c / n_k), grows with the
  new/old sample ratio and follows the memory size ("self-paced": recomputed every phase). ``none``
  switches FCS off. ``tau`` = 1. (On a 3-task digits run with rho = 10 and 5 exemplars, ``group`` gave
  0.61 average incremental accuracy against 0.54 for ``class`` and PODNet alike: one small run, not a
  finding, but the reason for the default beside the abstract's wording.)
- chronological attenuation (CAM, ``cam``): a_j = gamma^(t - t_j - 1) for a class learned at step
  t_j < t, 1 for the current task's classes, gamma = 0.9 (a guess): a class already compensated at
  many earlier steps is compensated less ("repetitive optimization of the older classes").
- inheritance transfer (ITS, ``its``): before phase t > 0, the frozen previous model (the teacher) embeds
  each new class's training images and each old class's exemplars (eval mode, no augmentation);
  mu_c = normalise(mean of normalised features). S_{c,k} = softmax over the old classes k (those with
  exemplars) of cos(mu_c, mu_k) / ``its_temperature`` (0.1). For a new-class sample the old logits get
  the extra margin beta S_{y,k} (``beta`` 0.5), so the old classes most similar to its class in the old
  embedding space are pushed away hardest ("reduce the representation confusion by estimating the
  similarity of different classes in the old embedding space"). A one-row-per-class head could use the
  old classifier rows for the old classes; with PODNet's K proxies per class we use the exemplar means (a guess too).

Method args: PODNet's, plus ``fcs`` (group | class | none), ``tau`` (1), ``cam`` (true), ``gamma`` (0.9),
``its`` (true), ``beta`` (0.5), ``its_temperature`` (0.1).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from gradlab.methods.args import Arg
from gradlab.methods.base import register
from gradlab.methods.podnet import PODNet

FCS_MODES = ("group", "class", "none")

# ---------------------------------------------------------------------------- the three parts, as pure functions
def frequency_offsets(counts, num_old: int, mode: str = "group", tau: float = 1.0) -> torch.Tensor:
    """FCS: o_j = tau log(n_j / N) (``class``), with n_j replaced by its group's mean count (``group``: old
    classes ``:num_old`` / new classes), or zeros (``none``). Counts below 1 count as 1."""
    n = torch.as_tensor(np.asarray(counts, dtype=np.float64)).clamp_min(1.0)
    if mode == "none":
        return torch.zeros_like(n, dtype=torch.float32)
    if mode == "group":
        n = n.clone()
        for group in (slice(0, num_old), slice(num_old, len(n))):
            if n[group].numel():
                n[group] = n[group].mean()
    return (tau * torch.log(n / n.sum())).float()


def chronological_attenuation(class_steps, step: int, gamma: float = 0.9) -> torch.Tensor:
    """CAM: a_j = gamma^(step - t_j - 1) for a class learned at step t_j < step, 1 for the current step's."""
    t = torch.as_tensor(np.asarray(class_steps), dtype=torch.float64)
    age = (step - t - 1).clamp_min(0.0)
    return torch.where(t < step, torch.full_like(t, float(gamma)) ** age, torch.ones_like(t)).float()


def class_similarity(new_means: torch.Tensor, old_means: torch.Tensor, temperature: float = 0.1,
                     valid: torch.Tensor | None = None) -> torch.Tensor:
    """ITS: S_{c,k} = softmax_k(cos(mu_c, mu_k) / T) over the old classes k with ``valid`` (default all);
    rows: new classes, columns: old classes. Zero rows when no old class is valid."""
    cos = F.normalize(new_means.float(), dim=1) @ F.normalize(old_means.float(), dim=1).T
    if valid is None:
        valid = torch.ones(old_means.shape[0], dtype=torch.bool, device=cos.device)
    if not bool(valid.any()):
        return torch.zeros_like(cos)
    scores = (cos / temperature).masked_fill(~valid[None, :], float("-inf"))
    return F.softmax(scores, dim=1)


def sir_logits(logits: torch.Tensor, targets: torch.Tensor, offsets: torch.Tensor | None,
               similarity: torch.Tensor | None, num_old: int, beta: float) -> torch.Tensor:
    """z~ = z + offsets, and for samples of a new class y: + beta S_{y,k} on every old logit k."""
    z = logits.float()
    if offsets is not None:
        z = z + offsets.to(z)
    if similarity is not None and num_old > 0 and beta > 0:
        new = targets >= num_old
        rows = similarity.to(z)[(targets - num_old).clamp_min(0)] * new[:, None].to(z)     # (B, num_old)
        z = torch.cat([z[:, :num_old] + beta * rows, z[:, num_old:]], dim=1)
    return z


# ---------------------------------------------------------------------------- the method
@register
class SIR(PODNet):
    """SIR (reconstruction from the abstract): PODNet + frequency compensation, inheritance transfer, attenuation."""

    name = "sir"

    args = {"fcs": Arg.choice("group", FCS_MODES, help="frequency compensation per class or per old/new group"),
            "tau": Arg.number(1.0, help="strength of the frequency compensation"),
            "cam": Arg.flag(True, help="chronological attenuation of the offsets"),
            "gamma": Arg.number(0.9, 0.0, 1.0, help="attenuation per step"),
            "its": Arg.flag(True, help="inheritance transfer from similar old classes"),
            "beta": Arg.number(0.5, help="inheritance transfer weight"),
            "its_temperature": Arg.number(0.1, above=True, help="temperature of the class similarity")}

    def __init__(self, cfg, **method_args):
        super().__init__(cfg, **method_args)
        self.offsets: torch.Tensor | None = None
        self.similarity: torch.Tensor | None = None

    # ------------------------------------------------------------------ per phase
    def class_steps(self, ctx) -> np.ndarray:
        """The step t_j at which each seen class arrived."""
        seen = [ctx.scenario.classes_seen(i) for i in range(ctx.phase + 1)]
        return np.repeat(np.arange(ctx.phase + 1), np.diff([0, *seen]))

    def before_task(self, ctx) -> None:
        super().before_task(ctx)
        num_old = ctx.num_old
        offsets = frequency_offsets(ctx.phase_class_counts(), num_old, self.fcs, self.tau)
        attenuation = (chronological_attenuation(self.class_steps(ctx), ctx.phase, self.gamma) if self.cam
                       else torch.ones_like(offsets))
        self.offsets = (offsets * attenuation).to(ctx.device)
        self.similarity = None
        if self.its and num_old > 0 and ctx.teacher is not None and self.beta > 0:
            new_means, old_means, valid = self.old_embedding_means(ctx)
            self.similarity = class_similarity(new_means, old_means, self.its_temperature, valid)
        ctx.phase_log["sir"] = {"offsets": self.offsets.cpu().tolist(), "attenuation": attenuation.tolist(),
                             "its": self.similarity is not None}

    @torch.no_grad()
    def old_embedding_means(self, ctx) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Unit-length means of the teacher's normalised features: new classes (their training images),
        old classes (their exemplars), and which old classes have exemplars."""
        num_old, num_seen = ctx.num_old, ctx.num_seen
        stored = ctx.memory.counts()
        indices = [ctx.task.train_indices, *[ctx.memory.for_class(c) for c in range(num_old) if stored.get(c, 0)]]
        teacher = ctx.teacher.eval()
        sums, counts = None, torch.zeros(num_seen, device=ctx.device)
        for batch in ctx.train_data.eval_batches(np.concatenate(indices).astype(np.int64)):
            f = F.normalize(teacher(batch.x).features.float(), dim=1)
            if sums is None:
                sums = torch.zeros(num_seen, f.shape[1], device=ctx.device)
            sums.index_add_(0, batch.y, f)
            counts.index_add_(0, batch.y, torch.ones_like(batch.y, dtype=torch.float32))
        means = F.normalize(sums, dim=1)
        return means[num_old:], means[:num_old], counts[:num_old] > 0

    # ------------------------------------------------------------------ the loss
    def classification_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        adjusted = sir_logits(logits, targets, self.offsets if self.fcs != "none" else None, self.similarity,
                              self.ctx.num_old if self.ctx is not None else 0, self.beta)
        return super().classification_loss(adjusted, targets)


