"""Balanced softmax (logit adjustment by the seen-class prior) and a probe of the mean logit per class."""
import torch
import torch.nn.functional as F

import gradlab


@gradlab.register_method
class BalancedSoftmax(gradlab.Method):
    """Balanced softmax: CE on z + tau log(prior of the phase's training counts)."""

    name = "balanced-softmax"
    args = {"tau": gradlab.Arg.number(1.0, help="strength of the adjustment")}

    def before_task(self, ctx):
        counts = torch.as_tensor(ctx.phase_class_counts(), dtype=torch.float32, device=ctx.device)
        self.log_prior = torch.log(counts.clamp_min(1) / counts.clamp_min(1).sum())

    def losses(self, batch, out):
        return {"ce": F.cross_entropy(out.logits.float() + self.tau * self.log_prior, batch.y)}


class MeanLogit(gradlab.Probe):
    """mean_logit: each class's mean logit over the last batch of every epoch."""

    def after_step(self, ctx):
        self.last = ctx.out.logits.detach().float().mean(0)

    def after_epoch(self, ctx):
        self.log.add(ctx.phase, ctx.epoch, -1, "mean_logit", self.last)


gradlab.register_probe("mean-logit", MeanLogit)
