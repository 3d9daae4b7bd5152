"""The paper's benchmarks as run configurations: ``configs/*.yaml``, one per table row, and the table in
``REPRODUCE.md`` built from their headers.

Each YAML starts with comment lines: a title, then ``# command:``, ``# check the data first:``,
``# training images ...``, ``# gpu_time:`` and ``# reported:`` (the number the paper or the official README
gives for the row, or ``unknown``). The settings below them are plain :class:`~gradlab.config.RunConfig` keys.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from gradlab.config import RunConfig
from gradlab.experiments.bundled import bundled_folder

HEADER_KEYS = ("command", "gpu_time", "reported")
TABLE_BEGIN, TABLE_END = "<!-- configs:begin -->", "<!-- configs:end -->"


def read_config_file(path: Path) -> dict:
    """{name, title, command, gpu_time, reported, config} of one ``configs/*.yaml``; the config validated."""
    path = Path(path)
    lines = path.read_text().splitlines()
    comments = [line[1:].strip() for line in lines if line.startswith("#")]
    if not comments:
        raise ValueError(f"{path}: expected comment lines (title, command, gpu_time, reported) at the top")
    row = {"name": path.stem, "title": comments[0]}
    for text in comments[1:]:
        key, _, value = text.partition(":")
        if key in HEADER_KEYS:
            row[key] = value.strip()
    missing = [key for key in HEADER_KEYS if key not in row]
    if missing:
        raise ValueError(f"{path}: header line(s) {', '.join('# ' + k + ':' for k in missing)} missing")
    row["config"] = RunConfig.from_yaml(path)
    row["settings"] = yaml.safe_load(path.read_text())
    return row


def config_rows(folder: str | Path | None = None) -> list[dict]:
    """Every config of ``folder`` (default: the bundled ``configs/``, see :mod:`gradlab.experiments.bundled`)."""
    folder = bundled_folder("configs") if folder is None else folder
    return [read_config_file(path) for path in sorted(Path(folder).glob("*.yaml"))] if folder else []


def reproduce_table(rows: list[dict]) -> str:
    """The Markdown table of REPRODUCE.md (between its markers)."""
    out = ["| config | benchmark | split (base / tasks) | command | GPU time | reported |",
           "|---|---|---|---|---|---|"]
    for row in rows:
        cfg = row["config"]
        base = "even" if cfg.base is None else str(cfg.base)
        bench = f"{cfg.scenario} `{cfg.order}`, ρ {cfg.rho:g}, {cfg.method}"
        out.append(f"| [{row['name']}](configs/{row['name']}.yaml) | {bench} | {base} / {cfg.tasks} | "
                   f"`{row['command']}` | {row['gpu_time']} | {row['reported']} |")
    return "\n".join(out)


def table_in(markdown: str) -> str:
    """The text between the configs markers of a Markdown file."""
    start, end = markdown.index(TABLE_BEGIN) + len(TABLE_BEGIN), markdown.index(TABLE_END)
    return markdown[start:end].strip()
