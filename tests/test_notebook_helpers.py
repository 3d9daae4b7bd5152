"""The notebooks' helpers without a kernel: the static copy of a plotly figure draws its data, and the
generated findings say what the numbers say (also when the paper's claims fail)."""
from __future__ import annotations

import numpy as np
import pandas as pd


def test_static_copy_draws_the_same_data():
    """notebook.to_matplotlib: every bar, point and heatmap cell of the plotly figure, on the facet it sits in."""
    import plotly.express as px

    from gradlab.notebook import helpers as notebook
    from gradlab.plots import interactive

    frame = pd.DataFrame({"phase": [0, 0, 1, 1, 1], "class": [0, 1, 0, 1, 2], "images": [5, 3, 2, 2, 7],
                          "role": ["new", "new", "old", "old", "new"]})
    static = notebook.to_matplotlib(px.bar(frame, x="class", y="images", color="role", facet_col="phase"))
    drawn = [ax for ax in static.axes if ax.patches]
    assert len(drawn) == 2
    assert sorted(p.get_height() for ax in drawn for p in ax.patches) == sorted(frame.images)
    assert {t.get_text() for t in static.legends[0].get_texts()} == {"new", "old"}

    curves = pd.DataFrame({"label": ["a", "a", "b", "b"], "phase": [0, 1, 0, 1], "acc_all_seen": [0.5, 0.4, 0.6, 0.55],
                           "acc_task_mean": [0.5, 0.4, 0.6, 0.5]})
    static = notebook.to_matplotlib(interactive.accuracy_curves(curves))
    lines = sorted(tuple(np.round(line.get_ydata(), 6)) for line in static.axes[0].lines)
    assert lines == [(50.0, 40.0), (60.0, 55.0)]
    seeds = pd.concat([curves.assign(seed=0), curves.assign(seed=1, acc_all_seen=curves.acc_all_seen + 0.1)])
    fig = interactive.accuracy_curves(seeds)          # per-seed tables: the mean over seeds, ± std error bars
    assert len(fig.data) == 2 and "2 seeds" in fig.layout.title.text
    assert np.allclose(fig.data[0].y, [55.0, 45.0]) and np.allclose(fig.data[0].error_y.array, [7.0710678, 7.0710678])

    matrix = pd.DataFrame([[0.1, np.nan], [0.2, 0.3]], index=pd.RangeIndex(2, name="phase"),
                          columns=pd.RangeIndex(2, name="task"))
    static = notebook.to_matplotlib(interactive.heatmap(matrix, "m"))
    image = static.axes[0].images[0].get_array()
    assert np.allclose(image.filled(np.nan)[~image.mask], [10.0, 20.0, 30.0])
    assert notebook.png_bytes(static)[:8] == b"\x89PNG\r\n\x1a\n"


def test_findings_say_what_the_numbers_say():
    """The generators on made-up tables where the paper's claims fail: the text must say so."""
    from gradlab.notebook import helpers as notebook

    rows = []
    forgetting = {"none": 0.30, "KD": 0.10, "feature": 0.20, "DAKD": 0.15}   # DAKD forgets more than KD
    for label, level in forgetting.items():
        for seed, noise in enumerate((-0.004, 0.0, 0.004)):
            for phase in (1, 2, 3, 4):
                rows.append({"label": label, "seed": seed, "phase": phase, "forgetting": level + noise,
                             "accuracy": 0.5, "average_incremental_accuracy": 0.6 - level + noise})
    finding = notebook.fig5_finding(pd.DataFrame(rows))
    text = finding.text
    assert "lowest forgetting: **KD**, 10.0 ± 0.4 %" in text
    assert "highest: **none**" in text
    assert "DAKD forgot 5.0 percentage points more than KD" in text and "less than KD" not in text
    assert "highest average incremental accuracy: **KD**" in text
    assert "Verdict on these runs: not reproduced" in text
    assert finding._repr_markdown_() == text

    rows = []
    for label, new_norm in (("CE", 0.89), ("DGR", 1.30)):   # CE's newest rows are smaller, DGR's larger
        for seed, noise in enumerate((-0.01, 0.0, 0.01)):
            for cls in range(10):
                task = cls // 2
                rows.append({"label": label, "seed": seed, "class": cls, "task": task, "train_count": 100 - 9 * cls,
                             "weight_norm": new_norm + noise if task == 4 else 1.0 + 0.001 * noise * cls,
                             "bias_abs": 0.0})
    text = notebook.weight_norm_finding(pd.DataFrame(rows)).text
    ce_line = next(line for line in text.splitlines() if line.startswith("- Under **CE**"))
    assert "rows average **0.89 ± 0.01 ×** the rows of the earlier tasks: smaller" in ce_line
    assert "larger" not in ce_line.split(";")[0]
    assert ("Under **DGR** the newest task's rows average **1.30 ± 0.01 ×** the rows of the earlier tasks: "
            "larger") in text
    assert "Verdict on these runs: not reproduced" in text

    single = pd.DataFrame([r for r in rows if r["seed"] == 0]).drop(columns="seed")
    text = notebook.weight_norm_finding(single).text
    assert "one seed" in text and "±" not in text.split("Verdict")[0]


def test_comparison_finding_says_which_method_is_better_by_the_spread_rule():
    import pandas as pd

    from gradlab.analysis.findings import comparison_finding

    rows = [{"method": "new", "seeds": 3, "average_incremental_accuracy": 0.70, "average_incremental_accuracy_std": 0.01,
             "average_forgetting": 0.10, "average_forgetting_std": 0.01},
            {"method": "CE", "seeds": 3, "average_incremental_accuracy": 0.50, "average_incremental_accuracy_std": 0.01,
             "average_forgetting": 0.05, "average_forgetting_std": 0.01},
            {"method": "DGR", "seeds": 3, "average_incremental_accuracy": 0.69, "average_incremental_accuracy_std": 0.02,
             "average_forgetting": 0.10, "average_forgetting_std": 0.02}]
    finding = comparison_finding(pd.DataFrame(rows), "new")
    text = str(finding)
    assert "average incremental accuracy: new **70.0 ± 1.0 %**; CE 50.0 ± 1.0 % (new better); DGR 69.0 ± 2.0 % (within the spread)." in text
    assert "average forgetting: new **10.0 ± 1.0 %**; CE 5.0 ± 1.0 % (new worse)" in text     # lower forgetting is better
    assert finding.numbers[("average_incremental_accuracy", "CE")] == "yes"
