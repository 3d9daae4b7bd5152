"""WA: "Maintaining Discrimination and Fairness in Class Incremental Learning" (Zhao et al., CVPR 2020).

From the paper's text, with PyCIL's ``models/wa.py`` for the code details:

- loss in phase t > 0 on D_t + memory: L = (1 - lambda) CE(z_all, y) + lambda KD_T(z_old, z^_old),
  lambda = C_old / (C_old + C_new), T = 2, KD_T the soft cross-entropy -sum softmax(z^/T) log softmax(z/T)
  averaged over the batch, without a T^2 factor. Phase 0: plain CE.
- weight aligning after every incremental phase (not after the base phase): gamma = mean_{old} ||w_j||_2 /
  mean_{new} ||w_j||_2 and w_j <- gamma w_j for the new rows; the bias is left alone. It runs in
  ``after_task``, so the aligned model is evaluated, herds the memory and becomes the next teacher.
- weight clipping (``clip``, on by default as in the paper): after every optimizer step of the main
  training the classifier weights are clamped to >= 0 (the features after ReLU + pooling are >= 0).
  PyCIL leaves it out: ``clip=false`` gives the reference-code variant.

What to expect: aligning helps only once the new rows have outgrown the old ones (gamma < 1), which long
schedules produce. In short schedules (few epochs, small data) gamma often comes out
> 1 and aligning *scales the new classes up*, lowering old-class accuracy; without clipping this is more
frequent. WA also leaves the imbalance inside a task (long-tailed new classes) untouched. The gamma of
every phase is in ``record.phase_log`` (``{"phase": t, "wa": {"gamma": ...}}``).

PyCIL calls the aligning twice per task; the second call is a near no-op (gamma ~ 1), not reproduced.
Method args: ``temperature`` (2), ``clip`` (true | false).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from gradlab.methods.args import Arg
from gradlab.methods.base import Method, register


def soft_cross_entropy(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 2.0) -> torch.Tensor:
    """KD_T: mean over the batch of -sum_j softmax(teacher/T)_j log softmax(student/T)_j (no T^2).

    The LwF / BiC / WA distillation term (FACIL's ``lwf.py`` / ``bic.py``, PyCIL's WA); its gradient
    equals that of KL(q || p), its value exceeds KL by the teacher's entropy.
    """
    q = F.softmax(teacher.float() / temperature, dim=1)
    return -(q * F.log_softmax(student.float() / temperature, dim=1)).sum(1).mean()


def align_weights(weight: torch.Tensor, num_old: int) -> float:
    """Scale rows ``num_old:`` in place so their mean L2 norm equals that of rows ``:num_old``; returns gamma."""
    norms = torch.linalg.vector_norm(weight.detach().float(), dim=1)
    gamma = norms[:num_old].mean() / norms[num_old:].mean().clamp_min(1e-12)
    with torch.no_grad():
        weight[num_old:] *= gamma.to(weight.dtype)
    return float(gamma)


@register
class WA(Method):
    """WA (Zhao et al., CVPR 2020): KD + weight aligning of the new classifier rows after each phase."""

    name = "wa"
    distributed = True      # every loss term is a mean over the batch's images (several ranks: exact)
    args = {"temperature": Arg.number(2.0, above=True, help="KD temperature T"),
            "clip": Arg.flag(True, help="clamp the classifier weights to >= 0 after every step (the paper)")}

    def __init__(self, cfg, **method_args):
        super().__init__(cfg, **method_args)
        self._clipping_optimizer = None

    def before_task(self, ctx) -> None:
        self.lam = ctx.num_old / ctx.num_seen if ctx.phase > 0 else 0.0

    def _clip_weights(self, optimizer, args, kwargs) -> None:
        with torch.no_grad():
            self.ctx.model.head.weight.clamp_(min=0)

    def losses(self, batch, out):
        ctx = self.ctx
        if self.clip and self._clipping_optimizer is not ctx.optimizer:   # a new optimizer each phase
            ctx.optimizer.register_step_post_hook(self._clip_weights)
            self._clipping_optimizer = ctx.optimizer
        logits = out.logits.float()
        ce = F.cross_entropy(logits, batch.y)
        if ctx.phase == 0:
            return {"ce": ce}
        with torch.no_grad():
            teacher = ctx.teacher(batch.x).logits.float()
        kd = soft_cross_entropy(logits[:, :ctx.num_old], teacher, self.temperature)
        return {"ce": (1 - self.lam) * ce, "kd": self.lam * kd}

    def after_task(self, ctx) -> None:
        if ctx.phase > 0:
            ctx.phase_log["wa"] = {"gamma": align_weights(ctx.model.head.weight, ctx.num_old)}
