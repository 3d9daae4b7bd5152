"""Extra training stages run in the trainer's loop: callbacks and probes see them, the divergence guard watches
them, and a run stopped inside one (BiC's bias layer, the LWS stage 2) resumes to the uninterrupted numbers."""
from __future__ import annotations

import warnings

import pytest

import gradlab
from gradlab.errors import RunDiverged

SETTINGS = dict(scenario="digits", tasks=3, epochs=2, seed=4, progress=False)
TIMINGS = ("wall_time_s", "resumed_from", "train_images_per_s", "eval_images_per_s")


class _Seen:
    def __init__(self):
        self.epochs = []

    def before_epoch(self, ctx):
        self.epochs.append((ctx.phase, ctx.stage, ctx.epoch))


class _StopInStage:
    """Raises at the start of ``epoch`` (counted inside the stage) of ``stage`` in ``phase``."""

    def __init__(self, phase, stage, epoch):
        self.phase, self.stage, self.epoch, self.seen = phase, stage, epoch, 0

    def before_epoch(self, ctx):
        if ctx.phase == self.phase and ctx.stage == self.stage:
            if self.seen == self.epoch:
                raise KeyboardInterrupt
            self.seen += 1


def test_callbacks_and_probes_see_the_stage_epochs(tmp_path):
    seen = _Seen()
    record = gradlab.run(method="bic", method_args={"bias_epochs": 3}, callbacks=[seen], out=str(tmp_path / "bic"),
                         **SETTINGS)
    phase1 = [(stage, epoch) for phase, stage, epoch in seen.epochs if phase == 1]
    assert phase1 == [(None, 0), (None, 1), ("bic-bias", 2), ("bic-bias", 3), ("bic-bias", 4)]
    assert not any(stage for phase, stage, _ in seen.epochs if phase == 0)          # no bias stage in the base phase
    probes = record.probes
    stage_rows = probes[probes["term"] == "grad_bic-bias"]
    assert sorted(stage_rows.query("phase == 1")["epoch"].unique()) == [2, 3, 4]
    assert len(record.summary["phase_log"][1]["bic"]["bias_losses"]) == 3


def test_the_divergence_guard_watches_a_stage(tmp_path):
    with pytest.raises(RunDiverged, match="phase 1"):
        gradlab.run(method="bic", method_args={"bias_epochs": 3, "bias_lr": 1e9}, out=str(tmp_path / "bic"),
                    **SETTINGS)


@pytest.mark.parametrize("method, args, stage", [("bic", {"bias_epochs": 4}, "bic-bias"),
                                                 ("eeil-2stage", {"stage2_epochs": 4, "finetune_epochs": 2},
                                                  "lws-stage2")])
def test_a_run_stopped_inside_a_stage_resumes_to_the_uninterrupted_numbers(method, args, stage, tmp_path):
    settings = dict(SETTINGS, method=method, method_args=args, checkpoint_every=1)
    full = gradlab.run(out=str(tmp_path / "full"), **settings)
    part = tmp_path / "part"
    with pytest.raises(KeyboardInterrupt):
        gradlab.run(out=str(part), callbacks=[_StopInStage(1, stage, 2)], **settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resumed = gradlab.run(out=str(part), resume=True, **settings)
    assert resumed.summary["resumed_from"].startswith(f"phase 1, stage {stage}")
    for key, value in full.summary.items():
        if key not in TIMINGS:
            assert resumed.summary[key] == value, key
    assert resumed.metrics.equals(full.metrics)
