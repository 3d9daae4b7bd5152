"""Learning-rate schedules: the step schedule and LT-CIL iCaRL's patience scheme (docs/methods/icarl.md)."""
import numpy as np
import pytest
import torch

import gradlab
from gradlab.config import RunConfig
from gradlab.errors import ConfigError
from gradlab.runs.runner import build_trainer
from gradlab.training.schedules import PatienceSchedule, StepSchedule

DIGITS = dict(scenario="digits", tasks=3, imbalance=10, batch_size=32, memory=5, method="icarl", progress=False,
              checkpoints=False, probes=[])


def optimizer(lr=0.1):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr)


def test_patience_divides_the_lr_after_patience_epochs_without_improvement_and_stops_below_lr_min():
    opt = optimizer()
    cfg = RunConfig(lr=0.1, lr_factor=10, lr_patience=2, lr_min=1e-3, val_fraction=0.1, lr_schedule="patience")
    schedule = PatienceSchedule(opt, cfg)
    lrs = []
    for loss in [5.0, 4.0, 4.5, 4.2,        # two epochs without improvement -> 0.01
                 3.0, 3.1,                  # an improvement restarts the count; one miss is not enough
                 3.2]:                      # second miss -> 0.001
        schedule.end_epoch(loss)
        lrs.append(opt.param_groups[0]["lr"])
        assert not schedule.finished
    assert lrs == pytest.approx([0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.001])
    schedule.end_epoch(3.3)
    schedule.end_epoch(3.4)                 # 0.001 / 10 < lr_min: the phase ends, the optimizer keeps 0.001
    assert schedule.finished and opt.param_groups[0]["lr"] == pytest.approx(0.001)
    log = schedule.log()
    assert log["epochs"] == 9 and log["stopped_early"] and log["last_lr"] == pytest.approx(0.001)
    assert log["validation_loss"][:2] == [5.0, 4.0] and log["lr"][3:5] == pytest.approx([0.1, 0.01])  # the lr each epoch trained with
    with pytest.raises(ValueError, match="validation loss"):
        schedule.end_epoch(None)


def test_step_schedule_divides_at_the_milestones():
    opt = optimizer()
    schedule = StepSchedule(opt, RunConfig(epochs=8, lr=0.1, lr_factor=10))    # milestones 4 and 6
    lrs = []
    for _ in range(8):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.end_epoch()
    assert lrs == pytest.approx([0.1] * 4 + [0.01] * 2 + [0.001] * 2)
    assert not schedule.finished and schedule.log() == {} and not schedule.needs_validation


@pytest.mark.parametrize("values, field", [
    ({"lr_schedule": "cosine"}, "lr_schedule must be one of \\['step', 'patience'\\]"),
    ({"lr_schedule": "patience"}, "set val_fraction > 0"),
    ({"lr_schedule": "patience", "val_fraction": 0.1, "lr_patience": 0}, "lr_patience must be an integer in \\[1, 10000\\]"),
    ({"lr_min": 0}, "lr_min must be a finite number > 0"),
])
def test_bad_schedule_settings_name_the_field(values, field):
    with pytest.raises(ConfigError, match=field):
        RunConfig.from_dict({"scenario": "synthetic", **values})


def test_a_task_without_validation_images_fails_before_anything_is_written(tmp_path):
    out = tmp_path / "run"
    # digits, rho 10, stratified: 0.5 % holds out one image of the head class (task 1) and none elsewhere
    # (the official draw would take image 0 of every task where a class rounds to 0)
    with pytest.raises(ConfigError, match=r"val_fraction: 0.005 leaves task\(s\) \[0, 2\] without validation"):
        gradlab.run(**DIGITS, epochs=2, val_fraction=0.005, holdout="stratified", lr_schedule="patience",
                    out=str(out))
    assert not out.exists()


def test_validation_loss_uses_only_the_current_tasks_hold_out():
    trainer = build_trainer(RunConfig(**DIGITS, epochs=1, val_fraction=0.2, lr_schedule="patience").validate())
    ctx, method = trainer.ctx, trainer.method
    task = ctx.scenario.tasks[1]
    trainer.run_phase(ctx.scenario.tasks[0])
    trainer.begin_phase(task)
    seen, original = [], method.losses
    method.losses = lambda batch, out: seen.append(batch.y.clone()) or original(batch, out)
    loss = trainer.validation_loss()
    labels = torch.cat(seen).numpy()
    assert set(labels) == set(task.classes)
    assert len(labels) == ctx.scenario.val_counts[task.classes].sum() > 0
    assert np.isfinite(loss) and loss > 0
    assert not ctx.model.training                                   # eval mode, as FACIL's eval


def test_patience_run_ends_phases_early_logs_the_schedule_and_repeats_exactly(tmp_path):
    settings = dict(DIGITS, epochs=40, val_fraction=0.2, lr_schedule="patience", lr_patience=2, lr_min=1e-3)
    a = gradlab.run(**settings, out=str(tmp_path / "a"))
    b = gradlab.run(**settings, out=str(tmp_path / "b"))
    schedules = [entry["schedule"] for entry in a.phase_log]
    assert len(schedules) == 3
    for s in schedules:
        assert s["stopped_early"] and s["epochs"] < 40 and len(s["validation_loss"]) == s["epochs"]
        assert s["lr"][0] == pytest.approx(0.1) and s["last_lr"] == pytest.approx(1e-3)
    assert a.summary["average_incremental_accuracy"] > 0.5                  # 10 classes: chance is 0.1
    assert a.phase_log == b.phase_log                                       # same seed, same numbers
    assert a.summary["average_incremental_accuracy"] == b.summary["average_incremental_accuracy"]
