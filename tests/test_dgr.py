"""DGR + DAKD checked against independent computations (docs/methods/dgr.md)."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import gradlab
from gradlab.config import RunConfig
from gradlab.errors import ConfigError
from gradlab.methods import build_method
from gradlab.methods.distillation import dakd, logit_kd
from gradlab.runs.runner import build_context
from gradlab.scenario import Scenario
from gradlab.training.trainer import Trainer, freeze


def phase_one_context(method_name="dgr", **method_args):
    """A digits scenario moved to phase 1 by hand: base head trained 0 steps, memory of 5 per class."""
    cfg = RunConfig(scenario="digits", tasks=3, imbalance=10, memory=5, selection="random", batch_size=16,
                    progress=False, method=method_name, method_args=method_args).validate()
    scenario = Scenario.from_config(cfg)
    method = build_method(cfg.method, cfg, **cfg.method_args)
    ctx = build_context(cfg, scenario, method)
    trainer = Trainer(ctx, method)
    method.ctx = ctx
    ctx.phase, ctx.task = 0, scenario.tasks[0]
    ctx.model.head.grow(len(scenario.tasks[0].classes))
    trainer.update_memory(scenario.tasks[0])
    ctx.teacher = freeze(ctx.model)
    ctx.phase, ctx.task = 1, scenario.tasks[1]
    ctx.model.head.grow(len(scenario.tasks[1].classes))
    ctx.train_indices = np.concatenate([ctx.memory.indices(), scenario.tasks[1].train_indices])
    method.before_task(ctx)
    return ctx, method, trainer


def take_step(ctx, method, generator):
    """What the trainer does for one step; returns the batch, the terms and the backbone grads of their plain sum."""
    ctx.step += 1
    batch = next(ctx.train_data.train_batches(ctx.train_indices, 16, generator))
    ctx.model.train()
    out = ctx.model(batch.x)
    terms = method.losses(batch, out)
    head = ctx.model.head
    W, b = head.weight, head.bias
    total = sum(terms.values())
    # independent reference: autograd straight onto the parameters, term by term
    ref = {name: torch.autograd.grad(term, [W, b], retain_graph=True, materialize_grads=True)
           for name, term in terms.items()}
    backbone = [p for p in ctx.model.backbone.parameters()]
    ref_backbone = torch.autograd.grad(total, backbone, retain_graph=True)
    for p in ctx.model.parameters():
        p.grad = None
    total.backward()
    method.after_backward(ctx)
    return ref, backbone, ref_backbone


def test_dgr_step_matches_an_independent_computation():
    torch.manual_seed(0)
    ctx, method, _ = phase_one_context()
    counts = ctx.scenario.train_counts
    num_old, num_seen = ctx.num_old, ctx.num_seen
    memory = np.array([ctx.memory.counts()[c] for c in range(num_old)])
    n_seen, n_new = counts[:num_old].sum(), counts[num_old:num_seen].sum()
    gamma = math.exp(-n_seen / (n_seen + n_new))
    assert method.gamma == pytest.approx(gamma)
    assert method.lambda_kd == pytest.approx(0.7 * math.sqrt(n_seen / n_new))
    prior = np.concatenate([memory, counts[num_old:num_seen]])
    assert np.allclose(method.log_prior.cpu().numpy(), np.log(prior / prior.sum()), atol=1e-6)

    generator = torch.Generator().manual_seed(3)
    phi = np.zeros(num_seen)
    for _ in range(2):                      # two steps: Phi is cumulative
        ref, backbone, ref_backbone = take_step(ctx, method, generator)
        (gce_w, gce_b), (gkd_w, gkd_b) = ref["ce"], ref["kd"]
        ce_norms = gce_w.norm(dim=1).numpy()
        phi += ce_norms
        alpha = np.empty(num_seen)
        for group in (range(0, num_old), range(num_old, num_seen)):
            for j in group:
                alpha[j] = min(phi[k] for k in group) / phi[j]
        r = phi[num_old:].mean() / phi[:num_old].mean()
        s = np.array([min(1.0, r)] * num_old + [min(1.0, gamma * r)] * (num_seen - num_old))
        omega = alpha * s
        kd_norms = gkd_w.norm(dim=1).numpy()[:num_old]
        beta = np.sqrt(((omega * ce_norms) ** 2).sum()) / np.sqrt((kd_norms ** 2).sum())
        expect_w = omega[:, None] * gce_w.numpy()
        expect_w[:num_old] += beta * gkd_w.numpy()[:num_old]
        expect_b = omega * gce_b.numpy()
        expect_b[:num_old] += beta * gkd_b.numpy()[:num_old]
        head = ctx.model.head
        assert np.allclose(head.weight.grad.numpy(), expect_w, rtol=1e-4, atol=1e-7)
        assert np.allclose(head.bias.grad.numpy(), expect_b, rtol=1e-4, atol=1e-7)
        assert np.allclose(method.phi.numpy(), phi, rtol=1e-5)
        # the backbone receives the plain gradient of L_ce + L_kd
        for p, g in zip(backbone, ref_backbone):
            assert torch.allclose(p.grad, g, rtol=1e-4, atol=1e-7)
        assert np.all(alpha <= 1 + 1e-9) and np.isclose(alpha[:num_old].max(), 1) and np.isclose(alpha[num_old:].max(), 1)
    assert torch.allclose(ctx.extras["row_scales"]["ce"], torch.as_tensor(omega, dtype=torch.float32), rtol=1e-4)


def test_phase_zero_uses_one_group_and_no_distillation():
    torch.manual_seed(0)
    cfg = RunConfig(scenario="digits", tasks=3, imbalance=10, batch_size=16, progress=False, method="dgr").validate()
    scenario = Scenario.from_config(cfg)
    method = build_method("dgr", cfg)
    ctx = build_context(cfg, scenario, method)
    method.ctx = ctx
    ctx.phase, ctx.task = 0, scenario.tasks[0]
    ctx.model.head.grow(len(scenario.tasks[0].classes))
    ctx.train_indices = scenario.tasks[0].train_indices
    method.before_task(ctx)
    ref, _, _ = take_step(ctx, method, torch.Generator().manual_seed(0))
    assert set(ref) == {"ce"}
    norms = ref["ce"][0].norm(dim=1)
    alpha = norms.min() / norms
    assert torch.allclose(ctx.model.head.weight.grad, alpha[:, None] * ref["ce"][0], rtol=1e-4, atol=1e-7)
    counts = scenario.train_counts[:4]
    assert np.allclose(method.log_prior.numpy(), np.log(counts / counts.sum()), atol=1e-6)


def test_feature_distillation_variant_leaves_the_classifier_rows_to_ce():
    torch.manual_seed(0)
    ctx, method, _ = phase_one_context("dgr", distillation="feature")
    ref, _, _ = take_step(ctx, method, torch.Generator().manual_seed(1))
    assert set(ref) == {"ce", "feature_kd"}
    assert torch.count_nonzero(ref["feature_kd"][0]) == 0        # no gradient on the classifier rows
    omega = ctx.extras["row_scales"]["ce"]
    assert torch.allclose(ctx.model.head.weight.grad, omega[:, None] * ref["ce"][0], rtol=1e-4, atol=1e-7)


def test_unreweighted_presets_leave_gradients_alone():
    torch.manual_seed(0)
    ctx, method, _ = phase_one_context("kd")
    ref, _, _ = take_step(ctx, method, torch.Generator().manual_seed(1))
    assert torch.allclose(ctx.model.head.weight.grad, ref["ce"][0] + ref["kd"][0], rtol=1e-5, atol=1e-8)
    assert method.prior is False and method.distillation == "kd"


def test_dakd_is_plain_kd_when_every_old_class_lost_the_same():
    torch.manual_seed(0)
    student = torch.randn(6, 5, requires_grad=True)
    teacher = torch.randn(6, 5)
    lost = torch.full((5,), 30.0)
    d = dakd(student, teacher, lost, 2.0)
    k = logit_kd(student, teacher, 2.0)
    g_d, = torch.autograd.grad(d, student)
    g_k, = torch.autograd.grad(k, student)
    assert torch.allclose(g_d, g_k, atol=1e-6)
    q = F.softmax(teacher / 2.0, dim=1)
    teacher_entropy = -(q * q.log()).sum(1).mean()
    assert torch.allclose(d, k + teacher_entropy, atol=1e-6)     # soft CE = KL + H(q)
    uneven = dakd(student, teacher, torch.tensor([0.0, 0.0, 0.0, 290.0, 134.0]), 2.0)
    g_u, = torch.autograd.grad(uneven, student)
    assert not torch.allclose(g_u, g_k, atol=1e-4)


def test_dakd_hand_computed():
    """DAKD (docs/methods/dgr.md) written out with numpy for one sample."""
    zs, zt = np.array([[1.0, -0.5, 2.0]]), np.array([[0.5, 0.0, 1.0]])
    k = np.array([0.0, 12.0, 290.0])
    p = (k + 0.001) / (k + 0.001).sum()
    h = -(p * np.log(p)).sum() / np.log(3)
    w = k / np.linalg.norm(k)
    mixed = w * zs + (1 - w) * zt
    softmax = lambda z: np.exp(z / 2) / np.exp(z / 2).sum()   # noqa: E731
    q = softmax(zt[0])
    expect = -(q * (h * np.log(softmax(zs[0])) + (1 - h) * np.log(softmax(mixed[0])))).sum()
    got = dakd(torch.tensor(zs), torch.tensor(zt), torch.tensor(k), 2.0)
    assert got.item() == pytest.approx(expect, rel=1e-6)


@pytest.mark.parametrize("args, field", [({"reweighting": "half"}, "reweighting"),
                                          ({"distillation": "attention"}, "distillation"),
                                          ({"prior": "yes"}, "prior"), ({"temperature": 0}, "temperature"),
                                          ({"lambda_b": -1}, "lambda_b")])
def test_bad_ablation_switches(args, field):
    with pytest.raises(ConfigError, match=f"method_args.{field}"):
        build_method("dgr", RunConfig(), **args)


def test_every_preset_runs_and_dgr_beats_ce_on_long_tailed_digits(tmp_path):
    settings = dict(scenario="digits", tasks=3, imbalance=10, epochs=6, batch_size=32, memory=10, progress=False,
                    checkpoints=False)
    results = {}
    for method in ("ce", "kd", "gr", "dgr-no-dakd", "dgr"):
        record = gradlab.run(method=method, out=str(tmp_path / method), **settings)
        assert record.summary["complete"]
        results[method] = record.summary["average_incremental_accuracy"]
    assert results["dgr"] >= results["ce"], results
