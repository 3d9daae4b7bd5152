"""PODNet: the local similarity classifier, LT-CIL's CE (the default) and the paper's
NCA, POD-spatial / POD-flat and their adaptive weight, each checked against an independent computation; small
offline digits runs that learn, on the small CNN and on LT-CIL's PODNet ResNet-32."""
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
from gradlab.methods import build_method, list_methods, method_options
from gradlab.methods.podnet import (
    PODNetModel,
    distillation_factor,
    drop_last_relu,
    lt_cil_nca_loss,
    nca_loss,
    pod_spatial,
)
from gradlab.models.factory import build_backbone
from gradlab.models.lsc import LocalSimilarityClassifier
from gradlab.models.resnet_cifar import ResNetCifar, ZeroPadShortcut
from gradlab.training.row_gradients import row_gradients

SETTINGS = dict(scenario="digits", tasks=3, imbalance=1, epochs=3, batch_size=32, memory=10, progress=False,
                checkpoints=False)
make_trainer = partial(conftest.make_trainer, {**SETTINGS, "probes": []}, "podnet")   # (method_args, **overrides)


def a_batch(ctx, size=16, seed=0):
    return next(ctx.train_data.train_batches(ctx.train_indices, size, torch.Generator().manual_seed(seed)))


# ---------------------------------------------------------------------------- the run
def test_podnet_trains_beats_chance_and_probes_read_the_lsc(tmp_path):
    record = gradlab.run(method="podnet", out=str(tmp_path / "podnet"), **SETTINGS)   # all probes on
    assert record.summary["complete"]
    assert record.summary["final_accuracy"] > 0.1 + 0.3, record.summary
    assert record.accuracy_matrix().shape == (3, 3)
    probes = record.probes
    terms = set(probes.term.astype(str))
    assert {"grad_ce", "grad_pod_flat", "grad_pod_spatial", "grad_applied", "weight_norm", "test_acc"} <= terms
    assert "grad_nca" not in terms                                  # LT-CIL's plain CE by default
    assert "bias_abs" not in terms                                  # the LSC has no bias
    last = probes[(probes.phase == 2) & (probes.epoch == SETTINGS["epochs"] - 1)]
    for term in ("grad_ce", "grad_applied", "weight_norm"):
        assert sorted(last[last.term == term]["class"]) == list(range(10)), term   # one row per class
    applied = last[last.term == "grad_applied"].set_index("class").value
    ce = last[last.term == "grad_ce"].set_index("class").value
    old = range(7)                                                  # tasks of 4 + 3 classes before phase 2
    assert (applied[list(old)] == 0).all() and (applied[[7, 8, 9]] > 0).all()   # old proxies frozen
    assert (ce[list(old)] > 0).all()                                # ... but the loss still pulls on them
    assert (last[last.term == "grad_pod_flat"].value == 0).all()    # feature terms never reach the proxies


# ---------------------------------------------------------------------------- the local similarity classifier
def test_lsc_output_equals_an_independent_computation():
    torch.manual_seed(0)
    head = LocalSimilarityClassifier(5, proxies_per_class=3)
    head.grow(2)
    head.grow(3)
    with torch.no_grad():
        head.eta.fill_(1.5)
    features = torch.randn(4, 5, dtype=torch.float64)
    proxies = [p.detach().double() for p in head.proxies]
    theta = torch.cat(proxies).reshape(5, 3, 5)                      # class, proxy, dim
    expected = np.zeros((4, 5))
    for b in range(4):
        h = features[b].numpy()
        for c in range(5):
            sims = [float(np.dot(h, t) / (np.linalg.norm(h) * np.linalg.norm(t))) for t in theta[c].numpy()]
            weights = np.exp(sims) / np.exp(sims).sum()
            expected[b, c] = 1.5 * float(np.dot(weights, sims))
    got = head.double()(features)
    assert got.shape == (4, 5)
    assert np.allclose(got.detach().numpy(), expected, rtol=1e-10, atol=1e-12)
    # the per-class view the probes read: row c = class c's proxies side by side; no bias
    assert head.weight.shape == (5, 15) and torch.equal(head.weight[3], theta[3].reshape(-1))
    assert head.bias is None
    # growing freezes the earlier blocks, eta stays trainable
    assert [p.requires_grad for p in head.proxies] == [False, True] and head.eta.requires_grad
    assert head.task_sizes == [2, 3] and head.num_classes == 5


def test_proxy_row_gradients_equal_autograd_and_cover_frozen_classes():
    torch.manual_seed(1)
    head = LocalSimilarityClassifier(6, proxies_per_class=4)
    head.grow(3)
    head.grow(2)
    features = torch.randn(8, 6, requires_grad=True)
    y = torch.randint(0, 5, (8,))
    logits = head(features)
    terms = {"nca": nca_loss(logits, y), "feat": features.pow(2).mean()}
    grads = {name: row_gradients(term, logits, features, head) for name, term in terms.items()}   # the probes' path
    trainable = torch.autograd.grad(terms["nca"], head.proxies[1], retain_graph=True)[0]
    assert torch.allclose(grads["nca"].weight[3:], trainable.reshape(2, 24), atol=1e-6)
    head.proxies[0].requires_grad_(True)                            # what the frozen block would receive
    logits2 = head(features)
    frozen = torch.autograd.grad(nca_loss(logits2, y), head.proxies[0])[0]
    assert torch.allclose(grads["nca"].weight[:3], frozen.reshape(3, 24), atol=1e-6)
    assert frozen.abs().sum() > 0
    assert not grads["feat"].weight.any() and torch.equal(grads["nca"].bias, torch.zeros(5))


# ---------------------------------------------------------------------------- NCA
def test_nca_with_margin_equals_an_independent_computation():
    z = torch.tensor([[2.0, 0.5, -1.0, 0.3], [0.1, 0.2, 0.3, 0.4], [5.0, -3.0, -3.0, -3.0]], dtype=torch.float64)
    y = torch.tensor([1, 3, 0])
    delta = 0.6

    def by_hand(hinge):
        total = 0.0
        for row, target in zip(z.tolist(), y.tolist()):
            others = sum(math.exp(v) for i, v in enumerate(row) if i != target)
            value = -math.log(math.exp(row[target] - delta) / others)
            total += max(value, 0.0) if hinge else value
        return total / len(z)

    assert nca_loss(z, y, delta, hinge=True).item() == pytest.approx(by_hand(True), rel=1e-6)
    assert nca_loss(z, y, delta, hinge=False).item() == pytest.approx(by_hand(False), rel=1e-6)
    assert by_hand(True) != pytest.approx(by_hand(False))          # the third sample is hinged away
    # the margin moves the (unhinged) loss by exactly delta
    assert (nca_loss(z, y, delta, hinge=False) - nca_loss(z, y, 0.0, hinge=False)).item() == pytest.approx(delta)
    # a hinged sample gives no gradient
    zz = z[2:].clone().requires_grad_(True)
    nca_loss(zz, y[2:], delta).backward()
    assert torch.equal(zz.grad, torch.zeros_like(zz))
    # the LT-CIL quirk: the margin comes off every logit, so the loss is plain CE whatever the margin
    for m in (0.0, 0.6, 3.0):
        assert lt_cil_nca_loss(z, y, m).item() == pytest.approx(F.cross_entropy(z, y).item(), rel=1e-6)
    assert nca_loss(z, y, delta).item() != pytest.approx(F.cross_entropy(z, y).item(), rel=1e-3)


def test_method_uses_the_chosen_classification_loss():
    ctx, method, trainer = make_trainer()
    trainer.begin_phase(ctx.scenario.tasks[0])
    batch = a_batch(ctx)
    out = ctx.model(batch.x)
    assert method.lt_cil_nca is True and method.class_term == "ce"  # the default: LT-CIL's plain CE
    terms = method.losses(batch, out)
    assert set(terms) == {"ce"}                                     # phase 0: no distillation
    assert terms["ce"].item() == pytest.approx(F.cross_entropy(out.logits, batch.y).item(), rel=1e-6)
    margin = build_method("podnet", ctx.cfg, margin=0.9, hinge=False)   # margin and hinge change nothing
    margin.ctx = ctx
    assert margin.losses(batch, out)["ce"].item() == pytest.approx(terms["ce"].item(), rel=1e-6)
    paper = build_method("podnet", ctx.cfg, lt_cil_nca=False)       # the paper's NCA
    paper.ctx = ctx
    terms = paper.losses(batch, out)
    assert set(terms) == {"nca"}
    assert terms["nca"].item() == pytest.approx(nca_loss(out.logits, batch.y, 0.6).item(), rel=1e-6)
    assert terms["nca"].item() != pytest.approx(F.cross_entropy(out.logits, batch.y).item(), rel=1e-3)


def test_classification_loss_default_follows_each_method_reference():
    cfg = RunConfig(method="podnet")
    assert build_method("podnet", cfg).lt_cil_nca is True
    assert build_method("podnet-2stage", cfg).lt_cil_nca is True    # LT-CIL's podnet_2stage: the same CE
    assert build_method("sir", cfg).lt_cil_nca is False             # built on the original PODNet: NCA
    assert build_method("sir", cfg, lt_cil_nca=True).class_term == "ce"
    assert build_method("podnet", cfg, lt_cil_nca=False).class_term == "nca"


# ---------------------------------------------------------------------------- POD-spatial
def pod_by_hand(new_maps, old_maps):
    stages = []
    for new, old in zip(new_maps, old_maps):
        new, old = new.detach().double().numpy(), old.detach().double().numpy()
        distances = []
        for b in range(new.shape[0]):
            vectors = []
            for m in (new[b], old[b]):
                c_, h_, w_ = m.shape
                sq = m ** 2
                along_h = [sum(sq[c, i, j] for j in range(w_)) for c in range(c_) for i in range(h_)]   # sum over W
                along_w = [sum(sq[c, i, j] for i in range(h_)) for c in range(c_) for j in range(w_)]   # sum over H
                v = np.array(along_h + along_w)
                vectors.append(v / np.linalg.norm(v))
            distances.append(np.linalg.norm(vectors[0] - vectors[1]))
        stages.append(np.mean(distances))
    return float(np.mean(stages))


def test_pod_spatial_equals_an_independent_computation():
    # a case small enough to do on paper: one 1x2 map; v(new) = (1, 1, 0)/sqrt2, v(old) = (1, 0, 1)/sqrt2
    new, old = torch.tensor([[[[1.0, 0.0]]]]), torch.tensor([[[[0.0, 1.0]]]])
    assert pod_spatial([new], [old]).item() == pytest.approx(1.0, rel=1e-6)
    torch.manual_seed(2)
    new_maps = [torch.randn(3, 2, 4, 5), torch.randn(3, 4, 2, 3)]
    old_maps = [torch.randn(3, 2, 4, 5), torch.randn(3, 4, 2, 3)]
    assert pod_spatial(new_maps, old_maps).item() == pytest.approx(pod_by_hand(new_maps, old_maps), rel=1e-5)
    rolled = [torch.roll(new_maps[0], 1, dims=3)]
    assert pod_spatial(rolled, new_maps[:1]).item() > 1e-3           # moving mass along W is seen


def test_pod_spatial_is_zero_for_identical_maps():
    torch.manual_seed(3)
    maps = [torch.randn(4, 3, 5, 5), torch.randn(4, 6, 3, 3)]
    assert pod_spatial(maps, [m.clone() for m in maps]).item() == pytest.approx(0.0, abs=1e-7)
    # it compares squared, normalised pooled maps: sign flips and a global scale leave it at zero
    assert pod_spatial([-m for m in maps], maps).item() == pytest.approx(0.0, abs=1e-7)
    assert pod_spatial([3 * m for m in maps], maps).item() == pytest.approx(0.0, abs=1e-6)
    assert pod_spatial([m + 0.5 for m in maps], maps).item() > 1e-3


# ---------------------------------------------------------------------------- distillation and its weight
@pytest.mark.parametrize("lambda_c, lambda_f", [(3.0, 1.0), (5.0, 0.5)])
def test_distillation_terms_and_lambda_scaling(lambda_c, lambda_f):
    ctx, method, trainer = make_trainer({"lambda_c": lambda_c, "lambda_f": lambda_f})
    assert distillation_factor(10, 3) == pytest.approx(math.sqrt(10 / 3))
    trainer.run_phase(ctx.scenario.tasks[0])
    assert method.factor == 0.0                                      # the base phase has no distillation
    for phase, seen, new in ((1, 7, 3), (2, 10, 3)):                 # digits, 3 tasks: 4 + 3 + 3 classes
        trainer.begin_phase(ctx.scenario.tasks[phase])
        assert (ctx.num_seen, ctx.num_seen - ctx.num_old) == (seen, new)
        assert method.factor == pytest.approx(math.sqrt(seen / new))
        assert ctx.phase_log["podnet"]["lambda_c"] == pytest.approx(lambda_c * math.sqrt(seen / new))
        batch = a_batch(ctx, seed=phase)
        ctx.model.train()                                           # as in training: BN on batch statistics
        out = ctx.model(batch.x)
        terms = method.losses(batch, out)
        with torch.no_grad():
            teacher = ctx.teacher(batch.x)
        flat = (1 - F.cosine_similarity(out.features, teacher.features, dim=1)).mean()
        spatial = pod_by_hand(out.stages, teacher.stages)
        assert set(terms) == {"ce", "pod_flat", "pod_spatial"}
        assert terms["pod_flat"].item() == pytest.approx(lambda_f * math.sqrt(seen / new) * flat.item(), rel=1e-5)
        assert terms["pod_spatial"].item() == pytest.approx(lambda_c * math.sqrt(seen / new) * spatial, rel=1e-4)
        assert terms["pod_spatial"].item() > 0 and terms["pod_flat"].item() > 0
        trainer.train_epoch(0)
        trainer.end_phase(ctx.scenario.tasks[phase])


def test_phase_one_trains_new_proxies_and_eta_only_in_the_head():
    ctx, method, trainer = make_trainer()
    trainer.run_phase(ctx.scenario.tasks[0])
    trainer.begin_phase(ctx.scenario.tasks[1])
    head = ctx.model.head
    old, eta = head.proxies[0].detach().clone(), head.eta.detach().clone()
    new = head.proxies[1].detach().clone()
    trainer.train_epoch(0)
    assert torch.equal(head.proxies[0], old)                         # frozen: no step, no weight decay
    assert not torch.equal(head.proxies[1], new) and not torch.equal(head.eta, eta)
    assert torch.equal(ctx.teacher.head.proxies[0], old)
    thawed, _, t2 = make_trainer({"freeze_old": False})
    t2.run_phase(thawed.scenario.tasks[0])
    t2.begin_phase(thawed.scenario.tasks[1])
    before = thawed.model.head.proxies[0].detach().clone()
    t2.train_epoch(0)
    assert not torch.equal(thawed.model.head.proxies[0], before)


# ---------------------------------------------------------------------------- backbone hooks
@pytest.mark.parametrize("name", ["small", "resnet32", "resnet32_podnet"])
def test_stage_outputs_and_last_relu_removal(name):
    torch.manual_seed(4)
    plain = build_backbone(name, in_channels=1).eval()
    x = torch.randn(3, 1, 8, 8)
    stages, feature = plain.forward_stages(x)
    assert [s.shape[1] for s in stages] == [16, 32, 64] and torch.equal(feature, plain(x))
    assert (stages[-1] >= 0).all()
    reference = build_backbone(name, in_channels=1, last_relu=False).eval()
    reference.load_state_dict(plain.state_dict())
    dropped = drop_last_relu(plain)
    stages, feature = dropped.forward_stages(x)
    assert torch.allclose(feature, reference(x)) and torch.equal(feature, dropped(x))
    assert (stages[-1] < 0).any() and (feature < 0).any()           # the last ReLU is gone
    model = build_method("podnet", RunConfig(method="podnet")).build_model(build_backbone(name, in_channels=1))
    assert isinstance(model, PODNetModel) and isinstance(model.head, LocalSimilarityClassifier)


def test_one_epoch_on_lt_cil_podnet_resnet32(tmp_path):
    ctx, method, trainer = make_trainer(model="resnet32_podnet")
    trainer.begin_phase(ctx.scenario.tasks[0])
    backbone = ctx.model.backbone
    assert isinstance(backbone, ResNetCifar) and not any(block.relu_out for block in backbone.layers)
    assert sum(isinstance(m, ZeroPadShortcut) for m in backbone.modules()) == 2
    x = a_batch(ctx).x
    ctx.model.eval()
    stages, feature = backbone.forward_stages(x)
    assert all((s < 0).any() for s in stages) and (feature < 0).any()     # no ReLU after any addition
    settings = {**SETTINGS, "epochs": 1, "probes": []}
    record = gradlab.run(method="podnet", model="resnet32_podnet", out=str(tmp_path / "r32p"), **settings)
    assert record.summary["complete"] and record.accuracy_matrix().shape == (3, 3)
    assert record.config.model == "resnet32_podnet"


# ---------------------------------------------------------------------------- switches
@pytest.mark.parametrize("args, field", [({"proxies": 0}, "proxies"), ({"proxies": 2.5}, "proxies"),
                                         ({"margin": -0.1}, "margin"), ({"margin": "big"}, "margin"),
                                         ({"lambda_c": -1}, "lambda_c"), ({"lambda_f": True}, "lambda_f"),
                                         ({"hinge": "yes"}, "hinge"), ({"freeze_old": 1}, "freeze_old"),
                                         ({"lt_cil_nca": "yes"}, "lt_cil_nca"), ({"lt_cil_nca": 0}, "lt_cil_nca"),
                                         ({"scale": 2}, "scale")])
def test_bad_switches_are_rejected_by_name(args, field):
    with pytest.raises(ConfigError, match=field):
        build_method("podnet", RunConfig(method="podnet"), **args)


def test_podnet_is_listed_with_its_switches():
    assert "podnet" in list_methods() and "Douillard" in list_methods()["podnet"]
    assert list(method_options("podnet")) == ["proxies", "margin", "lambda_c", "lambda_f", "hinge", "freeze_old",
                                              "lt_cil_nca"]
