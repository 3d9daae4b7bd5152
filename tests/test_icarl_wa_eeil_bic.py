"""iCaRL, WA, EEIL, BiC and the shared extra-stage helper.

Small offline digits runs; every distinctive piece is checked against an independent computation.
"""
import math
from functools import partial

import conftest
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import gradlab
from gradlab.config import RunConfig
from gradlab.errors import ConfigError
from gradlab.methods import build_method
from gradlab.methods.eeil import PAPER_ARGS
from gradlab.training.stages import Stage, class_balanced_indices

# fp32: these tests recompute the methods' arithmetic by hand and compare it exactly
SETTINGS = dict(scenario="digits", tasks=3, imbalance=1, epochs=5, batch_size=32, memory=10, progress=False,
                checkpoints=False, probes=[], precision="fp32")
make_trainer = partial(conftest.make_trainer, SETTINGS)      # (method, method_args, **overrides)
to_phase_one = partial(conftest.to_phase_one, SETTINGS)


def eval_batch(ctx, n=64):
    indices = np.flatnonzero(ctx.scenario.test.labels < ctx.num_seen)[:: max(1, ctx.num_seen * 50 // n)]
    return next(ctx.test_data.eval_batches(indices, batch_size=len(indices)))


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


# ---------------------------------------------------------------------------- every method learns
@pytest.mark.parametrize("method", ["icarl", "wa", "eeil", "bic"])
def test_method_trains_and_beats_chance(method, tmp_path):
    record = gradlab.run(method=method, out=str(tmp_path / method), **SETTINGS)
    assert record.summary["complete"]
    chance = 1 / 10
    assert record.summary["final_accuracy"] > chance + 0.2, record.summary
    assert record.accuracy_matrix().shape == (3, 3)


# ---------------------------------------------------------------------------- stages.py
def test_class_balanced_indices_equal_counts_and_deterministic():
    labels = np.repeat(np.arange(4), [30, 12, 7, 20])
    pool = np.arange(len(labels))[::-1].copy()
    g = torch.Generator().manual_seed(5)
    picked = class_balanced_indices(labels, pool, None, g)
    assert np.bincount(labels[picked]).tolist() == [7, 7, 7, 7]           # None: the smallest class count
    assert len(set(picked.tolist())) == len(picked) and set(picked) <= set(pool)
    capped = class_balanced_indices(labels, pool, 10, torch.Generator().manual_seed(5))
    assert np.bincount(labels[capped]).tolist() == [10, 10, 7, 10]        # a small class gives all it has
    again = class_balanced_indices(labels, pool, 10, torch.Generator().manual_seed(5))
    other = class_balanced_indices(labels, pool, 10, torch.Generator().manual_seed(6))
    assert np.array_equal(capped, again) and not np.array_equal(capped, other)
    with pytest.raises(ValueError, match="per_class"):
        class_balanced_indices(labels, pool, -1, g)


def test_an_extra_stage_updates_only_its_parameters():
    ctx, method, trainer = make_trainer("finetune")
    trainer.run_phase(ctx.scenario.tasks[0])
    head = ctx.model.head
    for p in ctx.model.parameters():
        p.grad = None
    before = snapshot(ctx.model)
    flags = {n: p.requires_grad for n, p in ctx.model.named_parameters()}

    def loss_fn(batch, out):
        return F.cross_entropy(out.logits, batch.y)

    indices = ctx.scenario.tasks[0].train_indices[:100]
    stage = Stage("stage", [head.weight], loss_fn, indices, epochs=2, lr=0.5, weight_decay=5e-4)
    losses = trainer.run_stage(stage)
    assert len(losses) == 2 and all(np.isfinite(losses))
    after = snapshot(ctx.model)
    for name in before:          # parameters and BatchNorm buffers alike
        if name == "head.weight":
            assert not torch.equal(before[name], after[name])
        else:
            assert torch.equal(before[name], after[name]), name
    assert all(p.grad is None for p in ctx.model.parameters())
    assert {n: p.requires_grad for n, p in ctx.model.named_parameters()} == flags
    # deterministic given the run seed: the same start gives the same result
    ctx.model.load_state_dict(before)
    again = trainer.run_stage(Stage("stage", [head.weight], loss_fn, indices, epochs=2, lr=0.5, weight_decay=5e-4))
    assert again == losses and torch.equal(snapshot(ctx.model)["head.weight"], after["head.weight"])


def test_an_extra_stage_with_a_trained_backbone_updates_it():
    ctx, method, trainer = make_trainer("finetune")
    trainer.run_phase(ctx.scenario.tasks[0])
    before = snapshot(ctx.model)
    params = list(ctx.model.backbone.parameters())
    trainer.run_stage(Stage("stage", params, lambda b, o: F.cross_entropy(o.logits, b.y),
                            ctx.scenario.tasks[0].train_indices[:64], epochs=1, lr=0.1))
    after = snapshot(ctx.model)
    assert torch.equal(before["head.weight"], after["head.weight"])
    changed = [n for n in before if n.startswith("backbone") and not torch.equal(before[n], after[n])]
    assert any("running_mean" in n for n in changed) and any(n.endswith("weight") for n in changed)


# ---------------------------------------------------------------------------- iCaRL
def test_icarl_nme_is_the_nearest_normalised_exemplar_mean():
    ctx, method, trainer = make_trainer("icarl", {"flip_means": True})
    trainer.run_phase(ctx.scenario.tasks[0])
    trainer.begin_phase(ctx.scenario.tasks[1])
    trainer.train_epoch(0)
    trainer.end_phase(ctx.scenario.tasks[1])        # memory updated, means computed at evaluation
    model = ctx.model.eval()
    means = []
    with torch.no_grad():
        for c in range(ctx.num_seen):
            idx = ctx.memory.for_class(c)
            x = ctx.train_data.normalise(ctx.train_data.images[torch.as_tensor(idx)])
            feats = torch.cat([model.backbone(x), model.backbone(torch.flip(x, dims=[3]))]).double()
            feats = feats / feats.norm(dim=1, keepdim=True)
            mu = feats.mean(0)
            means.append(mu / mu.norm())
        means = torch.stack(means)
        batch = eval_batch(ctx)
        f = model.backbone(batch.x).double()
        f = f / f.norm(dim=1, keepdim=True)
        dist = ((f[:, None, :] - means[None]) ** 2).sum(-1)
        scores = method.predict(batch.x)
    assert scores.shape == (len(batch.y), ctx.num_seen)
    assert torch.equal(scores.argmax(1), dist.argmin(1))
    assert torch.allclose(-scores.double(), dist, atol=1e-5)
    assert torch.allclose(method.means.double(), means, atol=1e-5)
    # digits do not flip by default; the switch forced the flipped views in; NME is not the CNN argmax
    assert ctx.train_data.flip is False and method.uses_flips()
    cnn = model(batch.x).logits
    assert not torch.allclose(cnn, scores)


def test_icarl_distillation_terms():
    ctx, method, trainer = to_phase_one("icarl")
    batch = next(ctx.train_data.train_batches(ctx.train_indices, 16, torch.Generator().manual_seed(0)))
    out = ctx.model(batch.x)
    terms = method.losses(batch, out)
    old = ctx.num_old
    with torch.no_grad():
        q = torch.sigmoid(ctx.teacher(batch.x).logits)
    p = torch.sigmoid(out.logits[:, :old])
    expect = sum(F.binary_cross_entropy(p[:, j], q[:, j]) for j in range(old))
    assert set(terms) == {"ce", "kd"}
    assert terms["kd"].item() == pytest.approx(expect.item(), rel=1e-5)
    assert terms["ce"].item() == pytest.approx(F.cross_entropy(out.logits, batch.y).item(), rel=1e-6)
    method.loss = "sigmoid"
    terms = method.losses(batch, out)
    onehot = F.one_hot(batch.y, ctx.num_seen).float()
    p_all = torch.sigmoid(out.logits)
    bce = lambda a, b: -(b * a.log() + (1 - b) * (1 - a).log())  # noqa: E731
    assert terms["ce"].item() == pytest.approx(bce(p_all[:, old:], onehot[:, old:]).sum(1).mean().item(), rel=1e-4)
    assert terms["kd"].item() == pytest.approx(bce(p_all[:, :old], q).sum(1).mean().item(), rel=1e-4)


# ---------------------------------------------------------------------------- WA
def test_wa_aligning_equalises_mean_row_norms_and_leaves_the_bias():
    ctx, method, trainer = to_phase_one("wa")
    head = ctx.model.head
    old = ctx.num_old
    w_before, b_before = head.weight.detach().clone(), head.bias.detach().clone()
    norms = w_before.norm(dim=1)
    gamma = (norms[:old].mean() / norms[old:].mean()).item()
    assert abs(gamma - 1) > 1e-3                     # there is something to align
    method.after_task(ctx)
    w = head.weight.detach()
    assert torch.equal(w[:old], w_before[:old])
    assert torch.allclose(w[old:], gamma * w_before[old:], rtol=1e-6)
    assert w[old:].norm(dim=1).mean().item() == pytest.approx(w[:old].norm(dim=1).mean().item(), rel=1e-6)
    assert torch.equal(head.bias.detach(), b_before)
    assert ctx.phase_log["wa"]["gamma"] == pytest.approx(gamma, rel=1e-6)
    assert method.lam == pytest.approx(old / ctx.num_seen)


def test_wa_base_phase_is_not_aligned_and_clipping_keeps_weights_non_negative():
    ctx, method, trainer = make_trainer("wa")
    trainer.begin_phase(ctx.scenario.tasks[0])
    trainer.train_epoch(0)
    w = ctx.model.head.weight.detach().clone()
    assert (w >= 0).all() and (w > 0).any()
    method.after_task(ctx)
    assert torch.equal(ctx.model.head.weight.detach(), w) and "wa" not in ctx.phase_log
    ctx2, _, trainer2 = make_trainer("wa", {"clip": False})
    trainer2.begin_phase(ctx2.scenario.tasks[0])
    trainer2.train_epoch(0)
    assert (ctx2.model.head.weight < 0).any()


# ---------------------------------------------------------------------------- EEIL
def test_eeil_defaults_are_the_lt_cil_reference_and_paper_args_restore_the_paper():
    cfg = RunConfig(method="eeil", epochs=160, lr=0.1)
    reference = build_method("eeil", cfg)
    assert (reference.skip_last_old_head, reference.balanced, reference.finetune_lr_factor) == (True, "facil", 0.01)
    assert reference.finetune_epochs == 40 and (reference.lambda_kd, reference.temperature) == (1.0, 2.0)
    assert PAPER_ARGS == {"skip_last_old_head": False, "balanced": "per_class", "finetune_lr_factor": 0.1}
    paper = build_method("eeil", cfg, **PAPER_ARGS)
    assert (paper.skip_last_old_head, paper.balanced, paper.finetune_lr_factor) == (False, "per_class", 0.1)


def test_eeil_paper_switch_uses_class_balanced_data_and_keeps_the_teacher():
    ctx, method, trainer = to_phase_one("eeil", {"finetune_epochs": 1, "balanced": "per_class"})
    indices = method.balanced_indices(ctx)
    counts = np.bincount(ctx.scenario.train.labels[indices], minlength=ctx.num_seen)
    assert counts.tolist() == [10] * ctx.num_seen          # 10 exemplars per old class, 10 images per new class
    assert set(ctx.memory.indices()) <= set(indices.tolist())
    teacher, model = snapshot(ctx.teacher), snapshot(ctx.model)
    method.after_task(ctx)
    trainer.run_stages()
    assert all(torch.equal(v, snapshot(ctx.teacher)[k]) for k, v in teacher.items())   # frozen teacher untouched
    assert any(not torch.equal(v, snapshot(ctx.model)[k]) for k, v in model.items())
    assert ctx.phase_log["eeil_finetune"]["images"] == len(indices) and len(method.finetune_losses) == 1


def test_eeil_default_sampling_and_the_skipped_head():
    ctx, method, _ = to_phase_one("eeil")
    indices = method.balanced_indices(ctx)
    old = ctx.memory.indices()
    assert len(indices) == 2 * len(old) and np.array_equal(indices[:len(old)], old)
    new = indices[len(old):]
    assert np.isin(new, ctx.task.train_indices).all() and len(set(new.tolist())) == len(new)
    counts = np.bincount(ctx.scenario.train.labels[new], minlength=ctx.num_seen)[ctx.num_old:]
    assert counts.sum() == len(old) and len(set(counts.tolist())) > 1        # a random draw, not per class
    batch = next(ctx.train_data.train_batches(ctx.train_indices, 16, torch.Generator().manual_seed(0)))
    out = ctx.model(batch.x)
    assert set(method.losses(batch, out)) == {"ce"}          # phase 1 by default: no distillation in stage a
    assert set(method._terms(batch, out, ctx.phase)) == {"ce", "kd"}   # stage b distils every old head
    faithful = build_method("eeil", ctx.cfg, skip_last_old_head=False)
    faithful.ctx = ctx
    terms = faithful.losses(batch, out)
    with torch.no_grad():
        t = ctx.teacher(batch.x).logits
    p, q = F.softmax(out.logits[:, :ctx.num_old] / 2, 1), F.softmax(t / 2, 1)
    assert terms["kd"].item() == pytest.approx(F.binary_cross_entropy(p, q).item(), rel=1e-5)


@pytest.mark.parametrize("factor", [None, 0.1])
def test_eeil_finetuning_lr_is_the_run_lr_times_the_factor(factor):
    args = {} if factor is None else {"finetune_lr_factor": factor}
    ctx, method, _ = to_phase_one("eeil", {"finetune_epochs": 2, **args}, lr=0.05)
    (stage,) = method.stages(ctx)
    assert stage.lr == pytest.approx(0.05 * (0.01 if factor is None else factor))
    assert stage.epochs == 2 and stage.momentum == ctx.cfg.momentum and stage.name == "eeil-balanced"


# ---------------------------------------------------------------------------- BiC
def test_bic_split_keeps_validation_images_out_of_training_and_memory():
    ctx, method, trainer = to_phase_one("bic", {"bias_epochs": 2})
    val, train = method.split_sizes(ctx)
    assert (val, train) == (math.ceil(0.1 * 10), 9)
    held = np.concatenate([method.val[c] for c in range(ctx.num_seen)])
    assert all(len(method.val[c]) == val for c in range(ctx.num_seen))
    assert not np.isin(held, ctx.train_indices).any()
    assert not np.isin(held, ctx.memory.indices()).any()
    assert set(ctx.memory.counts().values()) == {train}
    trainer.end_phase(ctx.scenario.tasks[1])
    assert not np.isin(held, ctx.memory.indices()).any() and set(ctx.memory.counts().values()) == {train}


def test_bic_stage_trains_only_alpha_beta_of_the_new_task_and_moves_only_new_logits():
    ctx, method, trainer = to_phase_one("bic", {"bias_epochs": 30, "bias_lr": 0.5})
    layers = ctx.model.bias_layers
    assert len(layers.alpha) == 2 and not any(p.requires_grad for p in [*layers.alpha, *layers.beta])
    before = snapshot(ctx.model)
    batch = eval_batch(ctx)
    ctx.model.eval()
    raw = ctx.model(batch.x).logits.detach()
    pred_before = method.predict(batch.x)
    method.after_task(ctx)
    trainer.run_stages()
    after = snapshot(ctx.model)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"bias_layers.alpha.1", "bias_layers.beta.1"}
    ctx.model.eval()
    pred_after = method.predict(batch.x)
    old = ctx.num_old
    assert torch.equal(pred_after[:, :old], pred_before[:, :old])
    assert not torch.allclose(pred_after[:, old:], pred_before[:, old:])
    alpha, beta = after["bias_layers.alpha.1"], after["bias_layers.beta.1"]
    expect_new = raw[:, old:] * alpha + beta            # the old task's (alpha, beta) is still (1, 0)
    assert torch.allclose(pred_after[:, old:], expect_new, atol=1e-6)
    assert torch.equal(after["bias_layers.alpha.0"], torch.ones(1))
    assert not any(p.requires_grad for p in [*layers.alpha, *layers.beta])
    assert method.bias_losses[-1] < method.bias_losses[0]


def test_bic_stage_one_loss_and_teacher_correction():
    ctx, method, trainer = to_phase_one("bic", {"bias_epochs": 0})
    with torch.no_grad():
        ctx.teacher.bias_layers.alpha[0].fill_(2.0)     # pretend an earlier correction: both nets use it
        ctx.model.bias_layers.alpha[0].fill_(2.0)
    batch = next(ctx.train_data.train_batches(ctx.train_indices, 16, torch.Generator().manual_seed(0)))
    out = ctx.model(batch.x)
    terms = method.losses(batch, out)
    lam = ctx.num_old / ctx.num_seen
    z = out.logits.clone()
    z[:, :ctx.num_old] *= 2
    with torch.no_grad():
        t = ctx.teacher(batch.x).logits * 2
    kd = -(F.softmax(t / 2, 1) * F.log_softmax(z[:, :ctx.num_old] / 2, 1)).sum(1).mean()
    assert terms["ce"].item() == pytest.approx((1 - lam) * F.cross_entropy(z, batch.y).item(), rel=1e-5)
    assert terms["kd"].item() == pytest.approx(lam * kd.item(), rel=1e-5)


# ---------------------------------------------------------------------------- switches
@pytest.mark.parametrize("method, args, field", [
    ("icarl", {"classifier": "knn"}, "classifier"), ("icarl", {"loss": "mse"}, "loss"),
    ("icarl", {"flip_means": "yes"}, "flip_means"), ("wa", {"clip": "no"}, "clip"),
    ("wa", {"temperature": 0}, "temperature"), ("eeil", {"balanced": "half"}, "balanced"),
    ("eeil", {"finetune_epochs": -1}, "finetune_epochs"), ("eeil", {"skip_last_old_head": 1}, "skip_last_old_head"),
    ("eeil", {"finetune_lr_factor": 0}, "finetune_lr_factor"), ("bic", {"bias_val_fraction": 1.0}, "bias_val_fraction"),
    ("bic", {"lambda_kd": 2}, "lambda_kd"), ("bic", {"bias_epochs": 1.5}, "bias_epochs")])
def test_bad_switches_name_the_field(method, args, field):
    with pytest.raises(ConfigError, match=f"method_args.{field}"):
        build_method(method, RunConfig(), **args)


def test_methods_that_need_exemplars_say_so():
    with pytest.raises(ConfigError, match="bic"):
        build_method("bic", RunConfig(memory=0))
    with pytest.raises(ConfigError, match="classifier"):
        build_method("icarl", RunConfig(memory=0))
    assert build_method("icarl", RunConfig(memory=0), classifier="cnn").classifier == "cnn"


def test_eeil_distils_a_one_class_head_without_nan():
    """A task of one class (learning from half on ten classes: 5 + 5 x 1) has softmax = 1 in its head, so
    1 - p = 0: the distillation must keep torch's BCE value (log clamped at -100) and give a finite gradient.
    Before the fix every EEIL run there diverged in its balanced fine-tuning of phase 2."""
    import torch

    from gradlab.methods.eeil import softmax_bce

    student = torch.randn(8, 3, requires_grad=True)
    teacher = torch.randn(8, 3)
    for columns in (slice(0, 1), slice(0, 3)):
        loss = softmax_bce(student[:, columns], teacher[:, columns], 2.0)
        p = torch.softmax(student[:, columns].detach() / 2, 1)
        q = torch.softmax(teacher[:, columns] / 2, 1)
        assert torch.allclose(loss, torch.nn.functional.binary_cross_entropy(p, q))
        (grad,) = torch.autograd.grad(loss, student)
        assert torch.isfinite(grad).all()


def test_eeil_trains_through_single_class_tasks(tmp_path):
    record = gradlab.run(scenario="digits", method="eeil", split="lfh", epochs=4, progress=False,
                         out=str(tmp_path / "run"))
    assert record.complete and record.summary["task_sizes"] == [5, 1, 1, 1, 1, 1]
    assert record.summary["final_accuracy"] > 0.3
