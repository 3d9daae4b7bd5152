"""The explorer in a real browser: JupyterLab + headless Chromium (Playwright), no network.

A private JupyterLab serves a temp folder holding ``04_explorer.ipynb`` with tiny settings and
``run_now = True`` (and a seed and a method argument set); Chromium opens it, runs every cell from the Run
menu, and the test checks that the widgets render (with the seed, max-per-class and method-args controls), the
run finishes with those values ("done" in the status line), its three plotly figures appear as regular
outputs under the widget (titled with the run's method, each drawn once: no PNG twin), that a malformed
method argument typed into its field and run gives one error line in the status, not a traceback, and that a
second run started with the Run button (method ``ce``) redraws those outputs, which are still there after the
notebook is saved and the page reloaded. Screenshots are saved under the test's tmp folder (``explorer.png``,
``explorer_widget.png``, ``reloaded.png``). The server and its kernels are always shut down. Without Chromium the test fails (it never skips): install it with
``apt-get install -y chromium`` (``.ci/run`` does) or point ``GRADLAB_CHROMIUM`` at a binary.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "04_explorer.ipynb"
TINY = {"scenario": "digits", "epochs": 1, "tasks": 3, "memory": 5, "seed": 1, "method_args": "distillation=kd",
        "run_now": True, "runs_dir": "runs"}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
SERVER_START_S = 180
RUN_S = 600


def chromium_path() -> str:
    for candidate in (os.environ.get("GRADLAB_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium",
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail("Chromium is not installed: the browser test needs it (Debian/Ubuntu: "
                "`apt-get install -y chromium`; `make test` installs it with scripts/get_chromium.sh), or set "
                "GRADLAB_CHROMIUM=/path/to/chromium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_notebook(folder: Path) -> Path:
    """04_explorer.ipynb with the tiny settings appended to its parameters cell."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code")
    assert "parameters" in cell.metadata.get("tags", [])
    cell.source += "\n\n# tiny settings for the browser test\n" + "\n".join(f"{k} = {v!r}" for k, v in TINY.items())
    path = folder / NOTEBOOK.name
    nbformat.write(nb, path)
    return path


def jupyter_env(base: Path) -> dict:
    """Private config/data/runtime/settings folders; no news fetching, no update checks."""
    env = dict(os.environ)
    dirs = {name: base / name for name in ("config", "data", "runtime", "settings", "workspaces", "ipython")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    (dirs["config"] / "labconfig").mkdir()
    (dirs["config"] / "labconfig" / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    (dirs["config"] / "jupyter_server_config.json").write_text(json.dumps(
        {"LabApp": {"news_url": None, "check_for_updates_class": "jupyterlab.NeverCheckForUpdate"}}))
    env.update(JUPYTER_CONFIG_DIR=str(dirs["config"]), JUPYTER_DATA_DIR=str(dirs["data"]),
               JUPYTER_RUNTIME_DIR=str(dirs["runtime"]), JUPYTERLAB_SETTINGS_DIR=str(dirs["settings"]),
               JUPYTERLAB_WORKSPACES_DIR=str(dirs["workspaces"]), IPYTHONDIR=str(dirs["ipython"]),
               JUPYTER_PLATFORM_DIRS="1", PYTHONUNBUFFERED="1")
    env.pop("PLOTLY_RENDERER", None)
    return env


def get(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read()


class Lab:
    """A JupyterLab server on a free localhost port, serving ``root``."""

    def __init__(self, root: Path, base: Path):
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = base / "jupyter.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
             "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}",
             "--ServerApp.open_browser=False", *(["--allow-root"] if os.geteuid() == 0 else [])],
            cwd=root, env=jupyter_env(base), stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def api(self, path: str) -> str:
        return f"{self.url}{path}?token={self.token}"

    def wait_ready(self) -> None:
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if get(self.api("/api/status"))[0] == 200:
                    return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        pytest.fail(f"JupyterLab did not answer within {SERVER_START_S} s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]

    def shutdown(self) -> None:
        """Shut the kernels down through the API, then the server (SIGTERM, then SIGKILL on its group)."""
        try:
            _, body = get(self.api("/api/kernels"))
            for kernel in json.loads(body):
                request = urllib.request.Request(self.api(f"/api/kernels/{kernel['id']}"), method="DELETE")
                urllib.request.urlopen(request, timeout=20).close()
        except (urllib.error.URLError, OSError, ValueError):
            pass
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()


OUTPUTS = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output"
ALL_FIGURES = f"{OUTPUTS}.jp-RenderedPlotly"
FIGURES = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell:has(.gradlab-explorer) .jp-OutputArea-output.jp-RenderedPlotly"


def figure_titles(page, count: int) -> list[str]:
    """Point at every figure output and return the titles of the interactive figures, once ``count`` are
    drawn: jupyterlab-plotly shows an output's PNG until the pointer enters it, then draws the plotly figure."""
    figures = page.locator(FIGURES)
    for i in range(figures.count()):
        figures.nth(i).scroll_into_view_if_needed()
        figures.nth(i).hover()
    page.wait_for_function(f"() => document.querySelectorAll('{FIGURES}.js-plotly-plot .gtitle').length >= {count}",
                           timeout=60_000)
    return page.locator(f"{FIGURES}.js-plotly-plot .gtitle").all_text_contents()


def wait_for_output_text(page, text: str, timeout_s: float) -> None:
    page.wait_for_function(f"() => [...document.querySelectorAll('{OUTPUTS}')].some(e => e.innerText.includes({text!r}))",
                           timeout=timeout_s * 1000)


def cell_prompts(page) -> list[str]:
    return page.eval_on_selector_all(
        ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt",
        "els => els.map(e => e.textContent.trim())")


def kernel_idle(page) -> bool:
    """The notebook's kernel is connected and idle: toolbar indicator and status bar agree."""
    indicator = page.locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator[data-status="idle"]')
    statusbar = page.locator("#jp-main-statusbar")
    return indicator.count() > 0 and statusbar.count() > 0 and "| Idle" in statusbar.inner_text()


def wait_notebook_ready(page, timeout_s: float) -> None:
    """Until the notebook's code cells are visible and its kernel is idle (not merely 'Initializing')."""
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell").first.wait_for(
        state="visible", timeout=timeout_s * 1000)
    deadline = time.monotonic() + timeout_s
    while not kernel_idle(page):
        if time.monotonic() > deadline:
            text = page.locator("#jp-main-statusbar").inner_text() if page.locator("#jp-main-statusbar").count() else "?"
            raise AssertionError(f"the kernel did not become idle within {timeout_s} s (status bar: {text!r})")
        time.sleep(0.5)
    time.sleep(1)  # let the notebook settle (focus, toolbar) before driving the menu


def run_all_cells(page, attempts: int = 3) -> None:
    """Run ▸ Run All Cells, as a user would; retried when no cell starts within a minute."""
    for _ in range(attempts):
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).first.click()
        page.locator('.lm-Menu-item:has(.lm-Menu-itemLabel:text-is("Run All Cells"))').click()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(p.strip("[]: ") for p in cell_prompts(page)):   # "[*]" or a count: execution started
                return
            time.sleep(0.5)
        page.keyboard.press("Escape")
    raise AssertionError(f"Run All Cells started no cell after {attempts} tries; prompts: {cell_prompts(page)}")


def wait_all_cells_ran(page, timeout_s: float) -> list[str]:
    """Until every code cell shows an execution count (no ``[*]``, no ``[ ]``) and the kernel is idle."""
    deadline = time.monotonic() + timeout_s
    prompts: list[str] = []
    while time.monotonic() < deadline:
        prompts = cell_prompts(page)
        done = prompts and all(p.strip("[]:").strip().isdigit() for p in prompts)
        idle = page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]').count() > 0
        if done and idle:
            return prompts
        time.sleep(1)
    raise AssertionError(f"cells did not finish within {timeout_s} s; prompts: {prompts}")


def test_explorer_in_jupyterlab(tmp_path):
    from playwright.sync_api import sync_playwright

    chromium = chromium_path()
    root = tmp_path / "root"
    root.mkdir()
    tiny_notebook(root)
    lab = Lab(root, tmp_path)
    console: list[str] = []
    try:
        lab.wait_ready()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 2600})
                page.set_default_timeout(120_000)
                page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}")
                        if msg.type == "error" else None)
                page.goto(f"{lab.url}/lab/tree/{NOTEBOOK.name}?token={lab.token}", wait_until="domcontentloaded")
                wait_notebook_ready(page, timeout_s=240)
                run_all_cells(page)

                page.wait_for_selector(".jupyter-widgets.widget-button, .widget-button", state="visible",
                                       timeout=RUN_S * 1000)
                explorer = page.locator(".gradlab-explorer")
                explorer.wait_for(state="visible", timeout=RUN_S * 1000)
                page.wait_for_selector(FIGURES, timeout=RUN_S * 1000)
                prompts = wait_all_cells_ran(page, RUN_S)

                status = explorer.inner_text()
                assert "done" in status, f"explorer status is not 'done':\n{status}"
                assert "error" not in status.lower()
                plots = page.locator(FIGURES)
                assert plots.count() == 3, f"expected 3 figures under the explorer, found {plots.count()}"
                assert page.locator(ALL_FIGURES).count() == 5, "gradlab.run(live=True)'s two panels, below the explorer"
                assert page.locator(".gradlab-explorer .jp-RenderedPlotly").count() == 0, "figures in widget state"
                first = plots.first.locator("img.plot-img").get_attribute("src")
                assert first.startswith("data:image/png;base64,"), "the output's PNG is shown until the pointer enters"
                titles = figure_titles(page, 3)
                assert sum(t.startswith("dgr (distillation=kd): ") for t in titles) == 2, titles
                assert page.locator(f"{FIGURES}.js-plotly-plot").count() == 3
                text = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)").inner_text()
                assert "Traceback (most recent call last)" not in text, f"a cell raised an error:\n{text[-3000:]}"
                assert "RunRecord(" in text, "the last cell should print the explorer's finished run"
                for label in ("seed", "max per class", "method args"):
                    assert label in status, f"the explorer has no {label!r} control:\n{status}"
                values = explorer.locator("input").evaluate_all("els => els.map(e => e.value)")
                assert "distillation=kd" in values and "1" in values, f"control values: {values}"
                assert "distillation=kd" in status and "seed 1" in status, "the run should carry the controls' values"
                twins = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-RenderedImage img")
                assert twins.count() == 0, "JupyterLab should draw each figure once (plotly), not its PNG as well"

                plots.last.scroll_into_view_if_needed()
                page.wait_for_timeout(1000)  # let plotly finish its layout
                shot, widget_shot = tmp_path / "explorer.png", tmp_path / "explorer_widget.png"
                page.screenshot(path=str(shot))
                explorer.screenshot(path=str(widget_shot))
                for path in (shot, widget_shot):
                    assert path.is_file() and path.stat().st_size > 10_000, f"{path} is missing or empty"
                print(f"screenshots: {shot} {widget_shot}; prompts {prompts}")

                # a bad method argument, typed as a user would: one line in the status, nothing raised
                field = explorer.locator(".widget-text input[type=text]").first
                field.fill("distillation kd")
                field.press("Enter")
                explorer.locator("button", has_text="Run").first.click()
                page.wait_for_function(
                    "() => document.querySelector('.gradlab-explorer').innerText.includes('method_args:')",
                    timeout=60_000)
                status = explorer.inner_text()
                assert "ConfigError" in status and "Traceback" not in status, status
                assert plots.count() == 3, "a bad setting must leave the last run's panels in place"

                # a second run from the Run button redraws the outputs in place; saved, they survive a reload
                field.fill("")
                field.press("Enter")
                explorer.locator(".widget-dropdown:has(label:text-is('method')) select").select_option("ce")
                explorer.locator("button", has_text="Run").first.click()
                wait_for_output_text(page, "Last run: ce", RUN_S)
                assert plots.count() == 3 and "error" not in explorer.inner_text().lower()
                titles = figure_titles(page, 3)          # the drawn figures were replaced, not kept
                assert sum(t.startswith("ce: ") for t in titles) == 2, titles
                page.keyboard.press("Control+s")
                saved = root / NOTEBOOK.name
                deadline = time.monotonic() + 60
                while "ce: per-class" not in saved.read_text() and time.monotonic() < deadline:
                    time.sleep(0.5)
                assert "ce: per-class" in saved.read_text(), "saving should write the explorer's outputs"
                page.reload(wait_until="domcontentloaded")
                wait_notebook_ready(page, timeout_s=240)
                page.wait_for_selector(FIGURES, timeout=60_000)
                wait_for_output_text(page, "Last run: ce", 60)
                titles = figure_titles(page, 3)
                assert len(titles) == 3 and sum(t.startswith("ce: ") for t in titles) == 2, titles
                page.screenshot(path=str(tmp_path / "reloaded.png"))
            except BaseException:
                with contextlib.suppress(Exception):
                    page.screenshot(path=str(tmp_path / "failure.png"))
                    print(f"failure screenshot: {tmp_path / 'failure.png'}")
                raise
            finally:
                browser.close()
    except BaseException:
        print("---- jupyter log ----\n" + lab.log_tail())
        print("---- browser console errors ----\n" + "\n".join(console[-30:]))
        raise
    finally:
        lab.shutdown()
