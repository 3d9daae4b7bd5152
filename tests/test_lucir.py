"""LUCIR (docs/methods/lucir.md): cosine head, less-forget weight, margin ranking, imprinting, frozen old rows.

Small offline digits runs; every distinctive piece is checked against an independent computation.
"""
import math

import conftest
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import gradlab
from gradlab.config import RunConfig
from gradlab.errors import ConfigError
from gradlab.methods import build_method
from gradlab.methods.lucir import less_forget_weight, margin_ranking_loss
from gradlab.models.heads import CosineHead
from gradlab.training.row_gradients import step_row_gradients
from gradlab.training.trainer import Callback

# fp32: these tests recompute the methods' arithmetic by hand and compare it exactly
SETTINGS = dict(scenario="digits", tasks=3, imbalance=1, epochs=1, batch_size=32, memory=10, progress=False,
                checkpoints=False, probes=[], precision="fp32", method="lucir")


def make_trainer(method_args=None, callbacks=(), **overrides):
    return conftest.make_trainer(SETTINGS, "lucir", method_args, callbacks=callbacks, **overrides)


def to_phase_one(method_args=None, **overrides):
    """Phase 0 trained (1 epoch, memory herded, teacher frozen); phase 1 begun (head grown, before_task run)."""
    ctx, method, trainer = make_trainer(method_args, **overrides)
    trainer.run_phase(ctx.scenario.tasks[0])
    trainer.begin_phase(ctx.scenario.tasks[1])
    return ctx, method, trainer


# ---------------------------------------------------------------------- a whole run
def test_small_run_trains_beats_chance_and_probes_work(tmp_path):
    torch.manual_seed(0)
    rec = gradlab.run(scenario="digits", method="lucir", tasks=3, epochs=3, batch_size=32, progress=False,
                      checkpoints=False, out=str(tmp_path / "run"))
    acc = rec.summary["accuracy_per_phase"]
    seen = np.cumsum(rec.summary["task_sizes"])
    assert len(acc) == 3
    for a, n in zip(acc, seen):
        assert a > 1.5 / n                                     # clearly above chance after every phase
    probes = rec.probes
    assert {"grad_ce", "grad_lf", "grad_mr", "grad_applied", "weight_norm"} <= set(probes.term.unique())
    assert "bias_abs" not in set(probes.term.unique())         # the cosine head has no bias
    applied = probes[(probes.phase == 2) & (probes.term == "grad_applied")].groupby("class").value.mean()
    assert np.all(applied.values[: seen[1]] == 0)             # frozen old rows receive no gradient
    assert np.all(applied.values[seen[1]:] > 0)
    lf = probes[probes.term == "grad_lf"].value
    assert np.all(lf == 0)                                     # feature distillation never touches the rows


# ---------------------------------------------------------------------- the cosine head
def test_cosine_head_is_sigma_times_cosine_and_sigma_learns():
    torch.manual_seed(0)
    head = CosineHead(6)
    head.grow(3)
    head.grow(2)
    assert head.num_classes == 5 and head.sigma.item() == 1.0 and head.sigma.requires_grad
    with torch.no_grad():
        head.sigma.fill_(2.5)
    features = torch.randn(4, 6)
    logits = head(features)
    w = head.weight.numpy().astype(np.float64)
    f = features.numpy().astype(np.float64)
    expect = np.empty((4, 5))
    for b in range(4):
        for c in range(5):
            expect[b, c] = 2.5 * float(f[b] @ w[c]) / (math.sqrt(f[b] @ f[b]) * math.sqrt(w[c] @ w[c]))
    assert np.allclose(logits.detach().numpy(), expect, atol=1e-5)
    # sigma gets a gradient from CE and moves with one SGD step
    opt = torch.optim.SGD([p for p in head.parameters() if p.requires_grad], lr=0.5)
    F.cross_entropy(logits, torch.tensor([0, 1, 3, 4])).backward()
    assert head.sigma.grad is not None and float(head.sigma.grad.abs()) > 0
    opt.step()
    assert head.sigma.item() != 2.5


def test_cosine_head_freezes_earlier_blocks_and_exact_row_gradients():
    torch.manual_seed(0)
    head = CosineHead(5)
    head.grow(3)
    assert head.blocks[0].requires_grad
    head.grow(2)
    assert not head.blocks[0].requires_grad and head.blocks[1].requires_grad
    assert torch.equal(head.weight, torch.cat([head.blocks[0], head.blocks[1]]).detach())
    # the probes' row-gradient hook equals autograd on every row (frozen ones included)
    for block in head.blocks:
        block.requires_grad_(True)
    features = torch.randn(7, 5)
    logits = head(features)
    loss = F.cross_entropy(logits, torch.tensor([0, 1, 2, 3, 4, 0, 3])) + (logits[:, 1] ** 2).mean()
    dz, = torch.autograd.grad(loss, logits, retain_graph=True)
    weight_grad, bias_grad = head.logit_row_gradients(dz, features)
    ref = torch.cat(torch.autograd.grad(loss, list(head.blocks)))
    assert torch.allclose(weight_grad, ref, atol=1e-6)
    assert torch.count_nonzero(bias_grad) == 0


# ---------------------------------------------------------------------- the margin ranking loss
def reference_margin_ranking(cos, y, num_old, k, margin):
    """Plain Python: per old-class sample, the K largest new-class scores, hinge summed; (sum, n_old)."""
    total, n_old = 0.0, 0
    for row, label in zip(cos.tolist(), y.tolist()):
        if label >= num_old:
            continue
        n_old += 1
        hardest = sorted(row[num_old:], reverse=True)[:k]
        total += sum(max(0.0, margin - row[label] + h) for h in hardest)
    return total, n_old


def test_margin_ranking_picks_the_k_hardest_new_classes():
    num_old = 3
    cos = torch.tensor([
        # old 0   old 1   old 2   new 3   new 4   new 5   new 6
        [0.30, -0.20, 0.10, 0.25, -0.90, 0.40, 0.05],    # y = 0: hardest new are 5 (0.40) and 3 (0.25)
        [0.10, 0.20, 0.00, 0.90, 0.80, 0.70, 0.60],      # y = 4: a new-class sample, ignored
        [-0.50, 0.10, 0.60, -0.30, 0.35, -0.10, 0.30],   # y = 2: hardest new are 4 (0.35) and 6 (0.30)
        [0.00, 0.95, 0.20, 0.10, 0.40, 0.44, -0.20],     # y = 1: 0.95 - 0.44 = 0.51 > m -> satisfied
    ])
    y = torch.tensor([0, 4, 2, 1])
    total, n_old = reference_margin_ranking(cos, y, num_old, 2, 0.5)
    # by hand: (0.5-0.3+0.4) + (0.5-0.3+0.25) + (0.5-0.6+0.35) + (0.5-0.6+0.3) + 0 + 0
    assert total == pytest.approx(0.6 + 0.45 + 0.25 + 0.2)
    assert n_old == 3
    assert float(margin_ranking_loss(cos, y, num_old, 2, 0.5, "pairs")) == pytest.approx(total / (n_old * 2))
    assert float(margin_ranking_loss(cos, y, num_old, 2, 0.5, "samples")) == pytest.approx(total / n_old)
    # K = 1 takes only the single hardest new class
    total1, _ = reference_margin_ranking(cos, y, num_old, 1, 0.5)
    assert float(margin_ranking_loss(cos, y, num_old, 1, 0.5)) == pytest.approx(total1 / n_old)
    assert total1 == pytest.approx(0.6 + 0.25)
    # independent check against torch's MarginRankingLoss on the hand-picked pairs
    gt = torch.tensor([0.30, 0.30, 0.60, 0.60, 0.95, 0.95])
    hard = torch.tensor([0.40, 0.25, 0.35, 0.30, 0.44, 0.40])
    expect = torch.nn.MarginRankingLoss(margin=0.5)(gt, hard, torch.ones(6))
    assert float(margin_ranking_loss(cos, y, num_old, 2, 0.5)) == pytest.approx(float(expect))


def test_margin_ranking_is_zero_when_margins_hold_or_no_old_sample():
    cos = torch.tensor([[0.9, 0.1, 0.3, 0.2, 0.39], [0.0, 0.8, 0.1, 0.29, 0.3]])
    y = torch.tensor([0, 1])
    assert float(margin_ranking_loss(cos, y, 2, 2, 0.5)) == 0.0           # 0.9-0.39 > 0.5, 0.8-0.3 = 0.5
    assert float(margin_ranking_loss(cos, y, 2, 2, 0.6)) > 0.0            # a larger margin is violated
    assert float(margin_ranking_loss(cos, torch.tensor([2, 4]), 2, 2, 0.5)) == 0.0   # only new-class samples
    assert float(margin_ranking_loss(cos, y, 0, 2, 0.5)) == 0.0           # base phase: no old classes


# ---------------------------------------------------------------------- per-phase constants and the loss
def test_less_forget_weight_follows_the_formula_and_enters_the_loss():
    assert less_forget_weight(5.0, 50, 10) == pytest.approx(5 * math.sqrt(5))
    assert less_forget_weight(5.0, 90, 10) == pytest.approx(15.0)
    assert less_forget_weight(10.0, 4, 3) == pytest.approx(10 * math.sqrt(4 / 3))
    assert less_forget_weight(5.0, 0, 4) == 0.0
    torch.manual_seed(0)
    ctx, method, _ = to_phase_one({"lambda_base": 10.0})
    num_old, num_new = ctx.num_old, ctx.num_seen - ctx.num_old
    assert (num_old, num_new) == (4, 3)
    assert method.lambda_lf == pytest.approx(10 * math.sqrt(4 / 3))
    assert ctx.phase_log["lucir"]["lambda"] == pytest.approx(method.lambda_lf)
    # the lf term is lambda * mean(1 - cos(f, f_teacher)); mr uses cos before sigma
    batch = next(ctx.train_data.train_batches(ctx.train_indices, 32, torch.Generator().manual_seed(0)))
    ctx.model.train()                   # batch statistics: the student's features differ from the teacher's
    with torch.no_grad():
        ctx.model.head.sigma.fill_(3.0)
        out = ctx.model(batch.x)
        terms = method.losses(batch, out)
        teacher = ctx.teacher.backbone(batch.x).numpy().astype(np.float64)
    f = out.features.numpy().astype(np.float64)
    cos = (f * teacher).sum(1) / (np.linalg.norm(f, axis=1) * np.linalg.norm(teacher, axis=1))
    assert float(terms["lf"]) > 1e-4
    assert float(terms["lf"]) == pytest.approx(method.lambda_lf * np.mean(1 - cos), rel=1e-4)
    assert float(terms["mr"]) == pytest.approx(float(margin_ranking_loss(out.logits / 3.0, batch.y, num_old)), rel=1e-5)
    assert float(terms["ce"]) == pytest.approx(float(F.cross_entropy(out.logits, batch.y)), rel=1e-5)


def test_old_class_weights_do_not_change_during_a_phase():
    class Watch(Callback):
        def __init__(self):
            self.start, self.end, self.sigma = {}, {}, {}

        def before_task(self, ctx):
            self.start[ctx.phase] = ctx.model.head.weight.clone()
            self.sigma[ctx.phase] = ctx.model.head.sigma.item()

        def after_task(self, ctx):
            self.end[ctx.phase] = (ctx.model.head.weight.clone(), ctx.model.head.sigma.item())

    torch.manual_seed(0)
    watch = Watch()
    ctx, method, trainer = make_trainer(callbacks=[watch], epochs=2)
    trainer.fit()
    for phase in (1, 2):
        num_old = ctx.scenario.classes_seen(phase - 1)
        start, (end, sigma) = watch.start[phase], watch.end[phase]
        assert torch.equal(start[:num_old], end[:num_old])        # exactly: no step, no weight decay
        assert not torch.allclose(start[num_old:], end[num_old:])  # the new rows train
        assert sigma != watch.sigma[phase]                          # and so does sigma
    assert not torch.allclose(watch.start[0], watch.end[0][0])      # the base phase trains every row


def test_cbf_trains_all_rows_only():
    torch.manual_seed(0)
    ctx, method, trainer = to_phase_one({"cbf": True, "cbf_epochs": 1})
    trainer.train_epoch(0)
    head = ctx.model.head
    weight, sigma = head.weight.clone(), head.sigma.item()
    backbone = [p.detach().clone() for p in ctx.model.backbone.parameters()]
    method.after_task(ctx)
    trainer.run_stages()
    assert len(method.cbf_losses) == 1
    after = head.weight
    num_old = ctx.num_old
    assert not torch.allclose(after[:num_old], weight[:num_old])       # old rows fine-tuned
    assert not torch.allclose(after[num_old:], weight[num_old:])       # new rows too
    assert head.sigma.item() == sigma                                   # sigma fixed (ft_flag 2)
    assert all(torch.equal(p, q) for p, q in zip(ctx.model.backbone.parameters(), backbone))
    assert not head.blocks[0].requires_grad and head.blocks[-1].requires_grad   # freezing restored
    # class-balanced data: the per-class budget from every seen class
    labels = ctx.scenario.train.labels[method.cbf_indices(ctx)]
    assert np.all(np.bincount(labels, minlength=ctx.num_seen)[: ctx.num_seen] == 10)


# ---------------------------------------------------------------------- imprinting
def test_imprinted_rows_are_scaled_normalised_mean_normalised_features():
    torch.manual_seed(0)
    ctx, method, _ = to_phase_one()
    num_old, num_seen = ctx.num_old, ctx.num_seen
    weight = ctx.model.head.weight.numpy().astype(np.float64)
    old_norm = np.linalg.norm(weight[:num_old], axis=1).mean()
    ctx.model.eval()
    labels = ctx.scenario.train.labels
    for c in range(num_old, num_seen):
        idx = ctx.task.train_indices[labels[ctx.task.train_indices] == c]
        with torch.no_grad():
            feats = torch.cat([ctx.model.backbone(b.x) for b in ctx.train_data.eval_batches(idx)]).numpy()
        feats = feats.astype(np.float64)
        unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
        mean = unit.mean(0)
        expect = mean / np.linalg.norm(mean) * old_norm
        assert np.allclose(weight[c], expect, atol=1e-5)
    # without imprinting the new rows keep their random initialisation
    torch.manual_seed(0)
    ctx2, _, _ = to_phase_one({"imprint": False})
    w2 = ctx2.model.head.weight.numpy()
    assert np.allclose(w2[:num_old], weight[:num_old], atol=1e-6)       # same base phase
    assert not np.allclose(w2[num_old:], weight[num_old:], atol=1e-3)
    assert np.abs(w2[num_old:]).max() <= 1 / math.sqrt(w2.shape[1])     # U(-1/sqrt(d), 1/sqrt(d))


# ---------------------------------------------------------------------- network, NME, probes, validation
def test_features_can_be_negative_and_probe_gradients_are_exact():
    torch.manual_seed(0)
    ctx, method, _ = to_phase_one()
    ctx.model.train()
    batch = next(ctx.train_data.train_batches(ctx.train_indices, 32, torch.Generator().manual_seed(1)))
    ctx.step += 1
    blocks = list(ctx.model.head.blocks)
    for block in blocks:                 # so that autograd can give the frozen rows' reference gradient too
        block.requires_grad_(True)
    out = ctx.model(batch.x)
    assert (out.features < 0).any()                                     # the last ReLU is gone
    terms = method.losses(batch, out)
    grads = step_row_gradients(ctx, terms, out)
    for name in ("ce", "mr"):
        ref = torch.cat(torch.autograd.grad(terms[name], blocks, retain_graph=True, allow_unused=True,
                                            materialize_grads=True))
        assert torch.allclose(grads[name].weight, ref, atol=1e-6), name
    assert torch.count_nonzero(grads["lf"].weight) == 0


def test_nme_predicts_the_nearest_exemplar_mean():
    torch.manual_seed(0)
    ctx, method, trainer = make_trainer({"classifier": "nme"})
    trainer.run_phase(ctx.scenario.tasks[0])
    ctx.model.eval()
    means = []
    for c in range(ctx.num_seen):
        with torch.no_grad():
            f = torch.cat([ctx.model.backbone(b.x) for b in ctx.train_data.eval_batches(ctx.memory.for_class(c))])
        f = f.numpy().astype(np.float64)
        m = (f / np.linalg.norm(f, axis=1, keepdims=True)).mean(0)
        means.append(m / np.linalg.norm(m))
    means = np.stack(means)
    test = np.flatnonzero(ctx.scenario.test.labels < ctx.num_seen)
    batch = next(ctx.test_data.eval_batches(test))
    scores = method.predict(batch.x)
    with torch.no_grad():
        f = ctx.model.backbone(batch.x).numpy().astype(np.float64)
    dist = ((f[:, None, :] - means[None]) ** 2).sum(-1)
    assert np.array_equal(scores.argmax(1).numpy(), dist.argmin(1))
    assert np.allclose(-scores.numpy(), dist, rtol=1e-4, atol=1e-4)


def test_bad_method_args_fail_early():
    cfg = RunConfig(**SETTINGS).validate()
    for bad in ({"classifier": "ncm"}, {"k": 0}, {"margin": -1}, {"lambda_base": "5"}, {"imprint": "yes"},
                {"mr_reduction": "mean"}, {"cbf_lr": 0}, {"cbf_epochs": 1.5}):
        with pytest.raises(ConfigError, match="method_args"):
            build_method("lucir", cfg, **bad)
    no_memory = RunConfig(**{**SETTINGS, "memory": 0}).validate()
    with pytest.raises(ConfigError, match="exemplars"):
        build_method("lucir", no_memory, classifier="nme")
    with pytest.raises(ConfigError, match="not understood"):
        build_method("lucir", cfg, K=2)
    assert "lucir" in gradlab.list_methods()
