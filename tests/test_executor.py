"""run_many: identical settings train once, cached runs are reused, a failing run is reported and never
looks finished, while the other runs still finish."""
import pytest

from gradlab.config import RunConfig
from gradlab.data.sources.fashion_mnist import FILES
from gradlab.runs.executor import cached_record, run_key, run_many

TINY = dict(scenario="digits", tasks=2, imbalance=10, epochs=1, batch_size=32, memory=5, checkpoints=False,
            progress=False, method="ce")


def test_identical_settings_train_once_and_the_cache_is_reused(tmp_path):
    a, b = RunConfig.from_dict({**TINY, "seed": 0}), RunConfig.from_dict({**TINY, "seed": 1})
    same_as_a = RunConfig.from_dict({**TINY, "seed": 0, "out": "elsewhere"})       # `out` is not a setting
    lines = []
    records = run_many({"a": a, "b": b, "a again": same_as_a}, tmp_path, workers=2, log=lines.append)
    assert records["a"].path == records["a again"].path == tmp_path / run_key(a)
    assert records["b"].path != records["a"].path and records["b"].complete
    assert lines[0].startswith("2 distinct runs: 0 finished before, 2 to train, 2 at a time: about ")
    assert sorted(line.split("]")[0] for line in lines[1:]) == ["[1/2", "[2/2"]
    lines.clear()
    again = run_many({"b": b}, tmp_path, workers=2, log=lines.append)
    assert again["b"].path == records["b"].path and lines == []                  # nothing trained, nothing said
    assert cached_record(RunConfig.from_dict({**TINY, "seed": 2}), tmp_path) is None


def test_same_numbers_in_a_worker_process_and_in_this_process(tmp_path):
    cfg = RunConfig.from_dict({**TINY, "seed": 3})
    pooled = run_many({"x": cfg, "y": RunConfig.from_dict({**TINY, "seed": 4})}, tmp_path / "pool", workers=2,
                      log=lambda line: None)["x"]
    here = run_many({"x": cfg}, tmp_path / "here", workers=1, log=lambda line: None)["x"]
    assert pooled.summary["average_incremental_accuracy"] == here.summary["average_incremental_accuracy"]
    assert pooled.metrics.equals(here.metrics)


def test_a_failing_run_is_named_and_leaves_no_finished_folder(tmp_path, monkeypatch):
    good = RunConfig.from_dict({**TINY, "seed": 0})
    data = tmp_path / "data"                   # all four Fashion-MNIST files there, but not IDX: fails in the worker
    data.mkdir()
    for name in FILES.values():
        (data / f"{name}.gz").write_bytes(b"corrupt")
    bad = RunConfig.from_dict({**TINY, "scenario": "fashion_mnist", "data_root": str(data)})
    with pytest.raises(RuntimeError, match=r"1 of 2 runs failed; first: broken \(ce-.*DataError.*corrupt"):
        run_many({"fine": good, "broken": bad}, tmp_path, workers=2, log=lambda line: None)
    assert (tmp_path / run_key(good) / "summary.json").is_file()                   # the other run finished
    assert not (tmp_path / run_key(bad)).exists()
    assert cached_record(bad, tmp_path) is None
