"""Run folders written before the package move (tests/fixtures/premove, gradlab at d11e58d) still load, and
the stopped ones resume to exactly the numbers of the complete ones."""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest

import gradlab

FIXTURES = Path(__file__).parent / "fixtures" / "premove"
TIMINGS = ("wall_time_s", "resumed_from", "train_images_per_s", "eval_images_per_s")


@pytest.mark.parametrize("method", ["dgr", "bic"])
def test_premove_complete_folder_loads(method):
    record = gradlab.load_run(FIXTURES / f"{method}_complete")
    assert record.complete and record.config.method == method
    assert len(record.metrics) > 0 and len(record.probes) > 0
    assert 0 < record.summary["average_incremental_accuracy"] <= 1


@pytest.mark.parametrize("method", ["dgr", "bic"])
def test_premove_stopped_folder_resumes_to_the_complete_numbers(method, tmp_path):
    stopped = gradlab.load_run(FIXTURES / f"{method}_stopped")
    assert not stopped.complete
    out = tmp_path / "stopped"
    shutil.copytree(FIXTURES / f"{method}_stopped", out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resumed = gradlab.run(str(out / "config.yaml"), out=str(out), resume=True)
    complete = gradlab.load_run(FIXTURES / f"{method}_complete")
    assert resumed.complete and resumed.summary["resumed_from"]
    for key, value in complete.summary.items():
        if key not in TIMINGS and key != "out":
            assert resumed.summary[key] == value, key
    pd.testing.assert_frame_equal(resumed.metrics, complete.metrics)
