"""The divergence guard catches exploding losses, not only NaN/inf, and never fires on a healthy run."""
from __future__ import annotations

import json

import pytest
import torch

import gradlab
from gradlab.cli import main
from gradlab.experiments.paper_figures import figure_configs
from gradlab.methods import list_methods

TINY = ["run", "--scenario", "digits", "--tasks", "2", "--max-per-class", "20", "--imbalance", "10",
        "--memory", "5", "--batch-size", "32", "--lr", "1e6", "--quiet", "--probes", ""]


def _diverges(capsys, out, *flags) -> str:
    """Runs the CLI; checks exit 3, a diverged summary and one error line; returns that line."""
    assert main([*TINY, *flags, "--out", str(out)]) == 3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["complete"] is False
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("gradlab: error:")]
    assert len(errors) == 1, errors
    assert "diverged in phase 0" in errors[0] and "lr 1e+06" in errors[0]
    return errors[0]


# finetune: epoch means 1.5e10 then 2e27, finite; LUCIR: 488 (first epoch), 1.2e7 (second), finite
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("method, epochs", [("finetune", 1), ("lucir", 2)])
def test_an_exploding_loss_marks_the_run_diverged(method, epochs, precision, tmp_path, capsys):
    error = _diverges(capsys, tmp_path / "run", "--method", method, "--epochs", str(epochs), "--precision", precision)
    assert f"epoch {epochs - 1} " in error and "loss term(s) ce reached " in error and "exploding" in error


def test_exploding_weights_mark_the_run_diverged_before_evaluation(tmp_path, capsys):
    """LUCIR's first epoch at lr 1e6: loss mean 488 (below the bound), but the weights reach 4e7."""
    error = _diverges(capsys, tmp_path / "run", "--method", "lucir", "--epochs", "1")
    assert "weight tensor(s) exceed 1e+06 (first: backbone." in error


@pytest.fixture
def one_thread():
    """These tiny networks run 10x faster on one thread than on two threads of a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_the_guard_never_fires_on_a_healthy_run_of_any_method(tmp_path, one_thread):
    """Every built-in method on digits' default recipe (10 epochs of batch 32, lr 0.1; largest term 8.7)."""
    for method in list_methods():
        record = gradlab.run(scenario="digits", method=method, tasks=3, progress=False, checkpoints=False,
                             probes=[], out=str(tmp_path / method))
        assert record.complete, method


@pytest.mark.parametrize("label", ["DGR", "BiC"])
def test_the_guard_never_fires_on_the_quick_figure_protocol(label, tmp_path, one_thread):
    """``make figures``' quick protocol with 2 epochs a phase (DGR's DAKD ``kd`` reaches 21 here)."""
    cfg = figure_configs("weight_norms", epochs=2)[label]
    assert gradlab.run(cfg, progress=False, checkpoints=False, probes=[], out=str(tmp_path / label)).complete
