"""Probes measure what autograd says, land in probes.parquet, and show the Figure 2 effect."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import gradlab
from gradlab.models.factory import IncrementalNet, build_backbone
from gradlab.probes import ClassifierGradientProbe, ProbeLog


def tiny_step(seed):
    torch.manual_seed(seed)
    model = IncrementalNet(build_backbone("small", in_channels=1))
    model.head.grow(3)
    model.head.grow(2)
    x, y = torch.randn(12, 1, 8, 8), torch.randint(0, 5, (12,))
    out = model(x)
    terms = {"ce": F.cross_entropy(out.logits, y),
             "aux": 0.3 * (out.logits[:, :3] ** 2).mean() + out.features.pow(2).mean()}
    return model, out, terms


def run_probe_step(probe, ctx):
    probe.before_backward(ctx)
    sum(ctx.losses.values()).backward()
    probe.after_backward(ctx)


def test_probe_norms_equal_autograd_row_norms_per_term():
    model, out, terms = tiny_step(0)
    expected = {name: torch.autograd.grad(term, model.head.weight, retain_graph=True)[0].norm(dim=1)
                for name, term in terms.items()}
    log = ProbeLog()
    ctx = SimpleNamespace(phase=0, epoch=0, step=0, extras={}, losses=terms, out=out, model=model)
    run_probe_step(ClassifierGradientProbe(log, every="step"), ctx)
    frame = log.frame()
    for name, norms in expected.items():
        got = frame[frame.term == f"grad_{name}"].sort_values("class").value.to_numpy()
        assert np.allclose(got, norms.numpy(), rtol=1e-5, atol=1e-8), name
    applied = frame[frame.term == "grad_applied"].sort_values("class").value.to_numpy()
    assert np.allclose(applied, model.head.weight.grad.norm(dim=1).numpy(), rtol=1e-5)
    assert (frame.step == 0).all() and set(frame["class"]) == set(range(5))


def test_epoch_mode_averages_the_steps():
    log_steps, log_epoch = ProbeLog(), ProbeLog()
    per_step, per_epoch = ClassifierGradientProbe(log_steps, "step"), ClassifierGradientProbe(log_epoch, "epoch")
    for step, seed in enumerate([1, 2, 3]):
        for probe in (per_step, per_epoch):
            model, out, terms = tiny_step(seed)
            run_probe_step(probe, SimpleNamespace(phase=1, epoch=4, step=step, extras={}, losses=terms,
                                                  out=out, model=model))
    per_epoch.after_epoch(SimpleNamespace(phase=1, epoch=4))
    steps, epoch = log_steps.frame(), log_epoch.frame()
    mean = steps.groupby(["term", "class"], observed=True).value.mean()
    got = epoch.set_index(["term", "class"]).value
    assert (epoch.step == -1).all() and (epoch.epoch == 4).all()
    assert np.allclose(got.sort_index().to_numpy(), mean.sort_index().to_numpy(), rtol=1e-6)


LT = dict(scenario="synthetic", base=10, tasks=3, imbalance=100, max_per_class=100, model="small", epochs=3,
          batch_size=32, memory=20, progress=False, checkpoints=True)


@pytest.fixture(scope="module")
def lt_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("lt")
    return {m: gradlab.run(method=m, out=str(root / m), **LT) for m in ("ce", "dgr")}


def mean_grad(record, phase, term="grad_ce"):
    p = record.probes
    return p[(p.term == term) & (p.phase == phase)].groupby("class").value.mean()


def test_figure2_effect_under_ce(lt_runs):
    """Under CE, per-class gradient magnitude follows the training count within a task (head > tail),
    and old classes (memory only) get smaller gradients than new ones."""
    record = lt_runs["ce"]
    counts, tasks = record.classes.train_count.to_numpy(), record.classes.task.to_numpy()
    for phase in (1, 2):
        g = mean_grad(record, phase)
        classes = g.index.to_numpy()
        new = classes[tasks[classes] == phase]
        old = classes[tasks[classes] < phase]
        head = new[counts[new] >= np.quantile(counts[new], 0.75)]
        tail = new[counts[new] <= np.quantile(counts[new], 0.25)]
        assert g[head].mean() > 2 * g[tail].mean()
        assert g[old].mean() < g[new].mean()


def test_dgr_reweighted_magnitudes_are_flatter(lt_runs):
    record = lt_runs["dgr"]
    for phase in (0, 1, 2):
        raw, reweighted = mean_grad(record, phase), mean_grad(record, phase, "grad_ce_reweighted")
        cv = lambda s: s.std() / s.mean()   # noqa: E731  coefficient of variation across classes
        assert cv(reweighted) < 0.5 * cv(raw), phase
    assert {"grad_kd", "grad_kd_reweighted", "weight_norm", "bias_abs", "test_acc"} <= set(record.probes.term)


def test_probe_table_shape_and_phase_end_weights(lt_runs):
    record = lt_runs["ce"]
    p = record.probes
    assert list(p.columns) == ["phase", "epoch", "step", "class", "term", "value"]
    per_epoch = p[(p.term == "grad_ce") & (p.phase == 2)]
    assert sorted(per_epoch.epoch.unique()) == [0, 1, 2] and len(per_epoch) == 3 * 100
    weights = p[(p.term == "weight_norm") & (p.phase == 2) & (p.epoch == -1)].sort_values("class").value
    head = record.checkpoint(2)["model"]["head.weight"]
    assert np.allclose(weights.to_numpy(), head.norm(dim=1).numpy(), rtol=1e-5)
    acc = p[(p.term == "test_acc") & (p.phase == 2)].sort_values("class").value.to_numpy()
    assert np.allclose(acc, record.class_accuracy_matrix()[2])


def test_probes_can_be_switched_off(tmp_path):
    record = gradlab.run(out=str(tmp_path / "off"), probes=[], **{**LT, "epochs": 1, "tasks": 2, "base": 50,
                                                                   "checkpoints": False})
    assert record.probes.empty and not (record.path / "probes.parquet").exists()
