"""The LT-CIL two-stage LWS wrapper (docs/methods/lws-two-stage.md) and SIR, a reconstruction
from the abstract (§2.4). Small offline digits runs; every distinctive piece is checked against an
independent computation."""
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
from gradlab.methods import METHODS, build_method, list_methods, method_options, register
from gradlab.methods.args import Arg
from gradlab.methods.finetune import Finetune
from gradlab.methods.lws import ClassAwareSampler, LWSTwoStage, stage2_lr_lambdas
from gradlab.methods.podnet import nca_loss
from gradlab.methods.sir import chronological_attenuation, class_similarity, frequency_offsets, sir_logits
from gradlab.training.stages import Stage

# fp32: these tests recompute the methods' arithmetic by hand and compare it exactly
SETTINGS = dict(scenario="digits", tasks=3, imbalance=1, epochs=5, batch_size=32, memory=10, progress=False,
                checkpoints=False, probes=[], precision="fp32")
TWO_STAGE = ["eeil-2stage", "lucir-2stage", "podnet-2stage"]
make_trainer = partial(conftest.make_trainer, SETTINGS)      # (method, method_args, **overrides)
to_phase_one = partial(conftest.to_phase_one, SETTINGS)


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def seen_test_images(ctx):
    indices = np.flatnonzero(ctx.scenario.test.labels < ctx.num_seen)
    return next(ctx.test_data.eval_batches(indices, batch_size=len(indices)))


# ---------------------------------------------------------------------------- every method learns
@pytest.mark.parametrize("method", [*TWO_STAGE, "sir"])
def test_method_trains_and_beats_chance(method, tmp_path):
    record = gradlab.run(method=method, out=str(tmp_path / method), **SETTINGS)
    assert record.summary["complete"] and record.summary["method"] == method
    assert record.summary["final_accuracy"] > 0.1 + 0.2, record.summary
    assert record.accuracy_matrix().shape == (3, 3)


def test_registry_info_and_wrapper():
    methods = list_methods()
    stage2 = ["stage2_epochs", "stage2_lr", "stage2_lws_lr_factor", "stage2_draw", "stage2_base_phase"]
    for base in ("eeil", "lucir", "podnet"):
        name = f"{base}-2stage"
        assert name in methods and "LWS stage 2" in methods[name]
        assert list(method_options(name)) == list(method_options(base)) + stage2
        assert issubclass(METHODS[name], METHODS[base]) and issubclass(METHODS[name], LWSTwoStage)
        assert all(isinstance(arg, Arg) for arg in method_options(name).values())
    assert methods["sir"].startswith("SIR (reconstruction from the abstract)")
    assert {"fcs", "tau", "cam", "gamma", "its", "beta", "its_temperature", "proxies"} <= set(method_options("sir"))

    class FinetuneTwoStage(LWSTwoStage, Finetune):   # any method gets stage 2 by putting the wrapper in front
        """Finetune + LWS stage 2."""
        name, base_name = "finetune-2stage", "finetune"

    try:
        register(FinetuneTwoStage)
        assert "stage2_epochs" in method_options("finetune-2stage")
        assert build_method("finetune-2stage", RunConfig(epochs=160)).stage2_epochs == 30
        assert build_method("finetune-2stage", RunConfig(epochs=16)).stage2_epochs == 3
        with pytest.raises(ConfigError, match="method_args.stage2_draw must be an integer >= 1, got 0"):
            build_method("finetune-2stage", RunConfig(epochs=16), stage2_draw=0)
    finally:
        METHODS.pop("finetune-2stage", None)


# ---------------------------------------------------------------------------- LWS stage 2
EXPECTED_CHANGES = {
    "eeil-2stage": {"head.weight", "head.bias", "lws.scale"},      # new rows only, checked below
    "lucir-2stage": {"head.blocks.1", "head.sigma", "lws.scale"},
    "podnet-2stage": {"head.proxies.1", "head.eta", "lws.scale"},
}


@pytest.mark.parametrize("method", TWO_STAGE)
def test_lws_stage_trains_only_the_scales_and_the_current_head(method):
    ctx, m, trainer = to_phase_one(method, {"stage2_epochs": 2})
    old = ctx.num_old
    for p in ctx.model.parameters():
        p.grad = None
    before, teacher = snapshot(ctx.model), snapshot(ctx.teacher)
    flags = {n: p.requires_grad for n, p in ctx.model.named_parameters()}
    assert before["lws.scale"].shape == (ctx.num_seen,)
    assert torch.equal(before["lws.scale"][old:], torch.ones(ctx.num_seen - old))   # new classes start at 1
    assert not torch.equal(before["lws.scale"][:old], torch.ones(old))              # phase 0's stage trained
    losses = trainer.run_stage(m.lws_stage(ctx))
    after = snapshot(ctx.model)
    assert len(losses) == 2 and all(np.isfinite(losses))
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == EXPECTED_CHANGES[method]                  # backbone, BN buffers, old blocks: bit-identical
    if method == "eeil-2stage":
        for key in ("head.weight", "head.bias"):
            assert torch.equal(before[key][:old], after[key][:old])                 # old rows untouched
            assert (before[key][old:] != after[key][old:]).any()
    assert (before["lws.scale"] != after["lws.scale"]).all()    # every task's scales train
    assert all(torch.equal(v, snapshot(ctx.teacher)[k]) for k, v in teacher.items())
    assert {n: p.requires_grad for n, p in ctx.model.named_parameters()} == flags
    assert not ctx.model.lws.scale.requires_grad               # the main training's optimizer never sees it
    assert ctx.phase_log["lws"]["losses"] == losses


def test_lws_stage_draws_class_balanced_batches_from_data_and_memory():
    ctx, m, trainer = to_phase_one("eeil-2stage", {"stage2_epochs": 1, "stage2_draw": 4}, batch_size=28)
    assert ctx.num_seen == 7                                   # 7 classes x 4 images = one batch of 28
    seen = []
    original = ctx.train_data.train_batches

    def recording(indices, batch_size, generator, shuffle=True):
        for batch in original(indices, batch_size, generator, shuffle=shuffle):
            seen.append((batch.y.clone(), batch.idx.clone()))
            yield batch

    ctx.train_data.train_batches = recording
    trainer.run_stage(m.lws_stage(ctx))
    assert sum(len(y) for y, _ in seen) == len(ctx.train_indices)            # one epoch = |D_t + M| images
    full = [(y, idx) for y, idx in seen if len(y) == 28]
    assert len(full) == len(ctx.train_indices) // 28
    for y, idx in full:
        assert torch.bincount(y, minlength=7).tolist() == [4] * 7
        assert np.isin(idx.numpy(), ctx.train_indices).all()
    counts = np.bincount(ctx.scenario.train.labels[ctx.train_indices], minlength=7)
    assert counts[:4].tolist() == [10] * 4 and counts[4:].min() > 100       # the phase's data is imbalanced


def test_class_aware_sampler_cycles_classes_and_images():
    labels = np.repeat(np.arange(3), [9, 2, 5])
    pool = np.arange(len(labels))[::-1].copy()
    sampler = ClassAwareSampler(labels, pool, draw=4, total=48, generator=torch.Generator().manual_seed(3))
    first = sampler(0)
    assert len(first) == 48 and set(first) <= set(pool)
    chunks = labels[first].reshape(-1, 4)
    assert (chunks == chunks[:, :1]).all()                     # 4 consecutive images of one class
    for start in range(0, len(chunks), 3):                     # every pass visits each class once
        assert sorted(chunks[start:start + 3, 0]) == [0, 1, 2]
    ones = first[labels[first] == 1]
    assert len(ones) == 16 and set(ones) == {pool[labels[pool] == 1][0], pool[labels[pool] == 1][1]}
    assert not np.array_equal(first, sampler(1))              # the cycles go on in the next epoch
    assert len(ClassAwareSampler(labels, pool)(0)) == len(pool)


def test_stage2_schedule_and_stage_groups_lambda_and_order():
    head, scales = stage2_lr_lambdas(30, 0.1)
    assert head(0) == 1.0 and head(15) == pytest.approx(0.5) and head(30) == pytest.approx(0.0, abs=1e-12)
    assert scales(0) == 1.0                                    # LT-CIL: both groups at the stage lr in epoch 1
    assert scales(1) == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi / 30)))
    ctx, _, trainer = make_trainer("finetune")
    trainer.run_phase(ctx.scenario.tasks[0])
    start = snapshot(ctx.model)
    indices = ctx.scenario.tasks[0].train_indices[:64]
    loss_fn = lambda b, o: F.cross_entropy(o.logits, b.y)  # noqa: E731
    w = ctx.model.head.weight
    trainer.run_stage(Stage("stage", [{"params": [w]}, {"params": [ctx.model.head.bias], "lr": 0.0}], loss_fn,
                            indices, epochs=2, lr=0.5, lr_lambda=lambda e: 1.0 if e == 0 else 0.0))
    two = snapshot(ctx.model)
    assert torch.equal(two["head.bias"], start["head.bias"])                       # the group at lr 0
    assert not torch.equal(two["head.weight"], start["head.weight"])
    ctx.model.load_state_dict(start)
    trainer.run_stage(Stage("stage", [{"params": [w]}, {"params": [ctx.model.head.bias], "lr": 0.0}], loss_fn,
                            indices, epochs=1, lr=0.5))
    assert torch.equal(snapshot(ctx.model)["head.weight"], two["head.weight"])   # lr multiplier 0 in epoch 2
    kept = list(ctx.train_data.train_batches(indices, 16, torch.Generator().manual_seed(0), shuffle=False))
    shuffled = list(ctx.train_data.train_batches(indices, 16, torch.Generator().manual_seed(0)))
    assert np.array_equal(torch.cat([b.idx for b in kept]).numpy(), indices)       # shuffle=False keeps the order
    assert not np.array_equal(torch.cat([b.idx for b in shuffled]).numpy(), indices)
    with pytest.raises(ValueError, match="milestones or lr_lambda"):
        trainer.run_stage(Stage("stage", [w], loss_fn, indices, epochs=1, lr=0.1, milestones=[1],
                                lr_lambda=lambda e: 1.0))


@pytest.mark.parametrize("method", ["eeil-2stage", "lucir-2stage"])
def test_prediction_applies_the_scales(method):
    ctx, m, trainer = to_phase_one(method, {"stage2_epochs": 1})
    trainer.end_phase(ctx.scenario.tasks[1])       # base after_task + stage 2 + memory + evaluation
    batch = seen_test_images(ctx)
    model = ctx.model.eval()
    scale = model.lws.scale.detach().clone()
    with torch.no_grad():
        raw = model(batch.x).logits
        expected = raw * scale
        assert torch.allclose(m.predict(batch.x), expected, atol=1e-6)
        # the trainer's evaluation used the scaled logits
        hits = (expected.argmax(1) == batch.y).float()
        correct = torch.zeros(ctx.num_seen).index_add_(0, batch.y, hits).numpy()
        assert np.array_equal(ctx.correct[1, :ctx.num_seen], correct)
        # hand-made scales: ones give the raw logits, others multiply each class's logit
        model.lws.scale.copy_(torch.ones_like(scale))
        assert torch.allclose(m.predict(batch.x), raw, atol=1e-6)
        hand = torch.linspace(0.25, 4.0, ctx.num_seen)
        model.lws.scale.copy_(hand)
        pred = m.predict(batch.x)
        assert torch.allclose(pred, raw * hand[None, :], atol=1e-5) and not torch.allclose(pred, raw, atol=1e-3)


def test_base_phase_stage_switch():
    ctx, m, trainer = make_trainer("eeil-2stage", {"stage2_base_phase": False})
    trainer.run_phase(ctx.scenario.tasks[0])
    assert torch.equal(ctx.model.lws.scale.detach(), torch.ones(4))
    ctx, m, trainer = make_trainer("eeil-2stage")
    trainer.run_phase(ctx.scenario.tasks[0])
    assert not torch.equal(ctx.model.lws.scale.detach(), torch.ones(4))


# ---------------------------------------------------------------------------- SIR: frequency compensation
def test_fcs_margin_grows_with_the_new_old_ratio():
    def margin(counts, num_old, **kw):
        o = frequency_offsets(counts, num_old, **kw)
        return float(o[num_old] - o[num_old - 1])

    small, large = margin([10, 10, 10, 40, 40], 3, mode="class"), margin([10, 10, 10, 80, 80], 3, mode="class")
    assert small == pytest.approx(math.log(40 / 10), rel=1e-6) and large == pytest.approx(math.log(8), rel=1e-6)
    assert large > small
    assert margin([10, 10, 10, 40, 40], 3, mode="class", tau=2.0) == pytest.approx(2 * math.log(4), rel=1e-6)
    o = frequency_offsets([4, 10, 16, 40, 80], 3, mode="group")           # old mean 10, new mean 60
    assert float(o[3] - o[0]) == pytest.approx(math.log(6), rel=1e-6)
    assert float(o[4] - o[2]) == pytest.approx(math.log(6), rel=1e-6)
    o = frequency_offsets([4, 10, 16, 40, 80], 3, mode="class")
    assert float(o[4] - o[0]) == pytest.approx(math.log(20), rel=1e-6)
    assert torch.equal(frequency_offsets([4, 10], 1, mode="none"), torch.zeros(2))


def test_sir_compensation_follows_the_memory_size():
    margins = {}
    for memory in (10, 3):
        ctx, m, trainer = make_trainer("sir", {"cam": False, "fcs": "class"}, memory=memory)
        trainer.run_phase(ctx.scenario.tasks[0])
        trainer.begin_phase(ctx.scenario.tasks[1])
        n = ctx.scenario.train_counts[: ctx.num_seen].astype(float)
        n[: ctx.num_old] = [ctx.memory.counts()[c] for c in range(ctx.num_old)]
        assert n[: ctx.num_old].tolist() == [memory] * ctx.num_old
        expected = np.log(n / n.sum())                                     # independent: log prior of the phase
        assert np.allclose(m.offsets.cpu().numpy(), expected, atol=1e-5)
        margins[memory] = float(m.offsets[ctx.num_old] - m.offsets[0])
        assert margins[memory] == pytest.approx(math.log(n[ctx.num_old] / memory), rel=1e-5)
    assert margins[3] > margins[10] > 0                                    # fewer exemplars: larger margin
    ctx, m, trainer = make_trainer("sir", {"cam": False})                  # the default: old / new group means
    trainer.run_phase(ctx.scenario.tasks[0])
    trainer.begin_phase(ctx.scenario.tasks[1])
    new_mean = ctx.scenario.train_counts[ctx.num_old: ctx.num_seen].mean()
    o = m.offsets.cpu().numpy()
    assert np.ptp(o[: ctx.num_old]) == 0 and np.ptp(o[ctx.num_old:]) < 1e-6
    assert o[-1] - o[0] == pytest.approx(math.log(new_mean / 10), rel=1e-5)


# ---------------------------------------------------------------------------- SIR: chronological attenuation
def test_attenuation_decays_over_steps():
    a = chronological_attenuation([0, 1, 2, 3, 3], step=3, gamma=0.9)
    assert a.tolist() == pytest.approx([0.81, 0.9, 1.0, 1.0, 1.0])
    ages = [chronological_attenuation([0], step=s, gamma=0.5).item() for s in range(1, 6)]
    assert ages == pytest.approx([1.0, 0.5, 0.25, 0.125, 0.0625]) and all(np.diff(ages) < 0)
    assert chronological_attenuation([0, 1], step=1, gamma=0.0).tolist() == [1.0, 1.0]
    ctx, m, trainer = make_trainer("sir", {"gamma": 0.8})
    for t in (0, 1):
        trainer.run_phase(ctx.scenario.tasks[t])
    trainer.begin_phase(ctx.scenario.tasks[2])
    assert ctx.phase_log["sir"]["attenuation"] == pytest.approx([0.8] * 4 + [1.0] * 6)
    raw = frequency_offsets(ctx.phase_class_counts(), ctx.num_old, mode="group")
    assert torch.allclose(m.offsets.cpu(), raw * torch.tensor([0.8] * 4 + [1.0] * 6), atol=1e-6)
    # the oldest task's compensation margin shrank relative to the unattenuated one
    assert float(m.offsets[7] - m.offsets[0]) < float(raw[7] - raw[0])


# ---------------------------------------------------------------------------- SIR: inheritance transfer
def test_inheritance_similarity_hand_made():
    new = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    old = torch.tensor([[3.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
    s = class_similarity(new, old, temperature=0.1)
    e = [math.exp(10), math.exp(0), math.exp(-10)]
    assert s[0].tolist() == pytest.approx([v / sum(e) for v in e], rel=1e-5)
    e = [math.exp(0), math.exp(10), math.exp(0)]
    assert s[1].tolist() == pytest.approx([v / sum(e) for v in e], rel=1e-5)
    masked = class_similarity(new, old, 0.1, valid=torch.tensor([False, True, True]))
    e = [math.exp(0), math.exp(-10)]
    assert masked[0].tolist() == pytest.approx([0.0] + [v / sum(e) for v in e], rel=1e-5, abs=1e-12)
    assert torch.equal(class_similarity(new, old, 0.1, valid=torch.zeros(3, dtype=torch.bool)), torch.zeros(2, 3))
    logits = torch.tensor([[0.5, 0.2, 0.1, 1.0, 2.0], [0.3, 0.3, 0.3, 0.3, 0.3]])
    targets = torch.tensor([4, 1])                          # a sample of new class 4 (row 1 of s), an old one
    offsets = torch.tensor([-1.0, -1.0, -1.0, -0.5, -0.5])
    z = sir_logits(logits, targets, offsets, s, num_old=3, beta=0.5)
    expect = logits + offsets
    expect[0, :3] += 0.5 * s[1]
    assert torch.allclose(z, expect) and torch.allclose(z[1], logits[1] + offsets)


def test_sir_similarity_uses_the_old_embedding_and_enters_the_loss():
    ctx, m, trainer = make_trainer("sir")
    trainer.run_phase(ctx.scenario.tasks[0])
    with torch.no_grad():                                   # the current model drifts; the teacher does not
        for p in ctx.model.backbone.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    trainer.begin_phase(ctx.scenario.tasks[1])

    def means(net):
        net.eval()
        mu = []
        with torch.no_grad():
            for c in range(ctx.num_seen):
                idx = ctx.memory.for_class(c) if c < ctx.num_old else \
                    ctx.task.train_indices[ctx.scenario.train.labels[ctx.task.train_indices] == c]
                batch = next(ctx.train_data.eval_batches(idx, batch_size=len(idx)))
                f = net(batch.x).features.double()
                mu.append(F.normalize(F.normalize(f, dim=1).mean(0), dim=0))
        return torch.stack(mu)

    def similarity(mu):
        cos = mu[ctx.num_old:] @ mu[: ctx.num_old].T
        return torch.softmax(cos / 0.1, dim=1)

    old_view, drifted = similarity(means(ctx.teacher)), similarity(means(ctx.model))
    assert m.similarity.shape == (3, 4)
    assert torch.allclose(m.similarity.double(), old_view, atol=1e-4)
    assert not torch.allclose(m.similarity.double(), drifted, atol=1e-2)
    ctx.model.train()
    batch = next(ctx.train_data.train_batches(ctx.train_indices, 64, torch.Generator().manual_seed(0)))
    out = ctx.model(batch.x)
    terms = m.losses(batch, out)
    z = out.logits.detach().double() + m.offsets.double()
    new = batch.y >= ctx.num_old
    assert new.any() and (~new).any()
    z[new, : ctx.num_old] += 0.5 * old_view[batch.y[new] - ctx.num_old]
    expect = nca_loss(z.float(), batch.y, m.margin, m.hinge)
    assert terms["nca"].item() == pytest.approx(expect.item(), rel=1e-4)
    plain = nca_loss(out.logits.detach(), batch.y, m.margin, m.hinge)
    assert abs(terms["nca"].item() - plain.item()) > 1e-3
    off = build_method("sir", ctx.cfg, its=False, fcs="none")
    off.ctx = ctx
    off.before_task(ctx)
    assert off.similarity is None
    assert off.losses(batch, out)["nca"].item() == pytest.approx(plain.item(), rel=1e-6)


# ---------------------------------------------------------------------------- switches
@pytest.mark.parametrize("method, args, field", [
    ("eeil-2stage", {"stage2_epochs": -1}, "stage2_epochs"), ("eeil-2stage", {"stage2_epochs": 1.5}, "stage2_epochs"),
    ("lucir-2stage", {"stage2_lr": 0}, "stage2_lr"),
    ("podnet-2stage", {"stage2_lws_lr_factor": "x"}, "stage2_lws_lr_factor"),
    ("eeil-2stage", {"stage2_draw": 0}, "stage2_draw"),
    ("eeil-2stage", {"stage2_base_phase": "yes"}, "stage2_base_phase"),
    ("lucir-2stage", {"classifier": "nme"}, "classifier"), ("eeil-2stage", {"balanced": "half"}, "balanced"),
    ("sir", {"fcs": "prior"}, "fcs"), ("sir", {"tau": -1}, "tau"), ("sir", {"gamma": 1.5}, "gamma"),
    ("sir", {"its": "yes"}, "its"), ("sir", {"cam": 1}, "cam"), ("sir", {"beta": -0.1}, "beta"),
    ("sir", {"its_temperature": 0}, "its_temperature"), ("sir", {"proxies": 0}, "proxies")])
def test_bad_switches_name_the_field(method, args, field):
    with pytest.raises(ConfigError, match=f"method_args.{field}"):
        build_method(method, RunConfig(), **args)


def test_unknown_switches_are_rejected_and_allowed_values_named():
    with pytest.raises(ConfigError, match="stage2_epochz"):
        build_method("eeil-2stage", RunConfig(), stage2_epochz=3)
    with pytest.raises(ConfigError, match=r"\['group', 'class', 'none'\]"):
        build_method("sir", RunConfig(), fcs="prior")
    m = build_method("podnet-2stage", RunConfig(epochs=160), stage2_lr=0.05, margin=0.3)
    assert (m.stage2_epochs, m.stage2_lr, m.margin) == (30, 0.05, 0.3)
