"""The lessons as a learner uses them: JupyterLab in headless Chromium runs each one and its explorers are moved.

    python tools/browser_test.py [--out test-artifacts] [--jobs 2] [LESSON ...]
    python tools/browser_test.py --setup     # only install what is missing

Every lesson in notebooks/ (or those whose name starts with a LESSON given, e.g. `01 04`) is copied
into a temporary folder, opened in JupyterLab and run with Run All. The check waits until no cell is
queued and every code cell has an execution count, then fails on any error output; in each explorer
it moves one control and requires the displayed state to change. A screenshot per lesson goes to
--out. The JupyterLab server started here is always stopped. Exit status: 0 all passed, 1 a lesson
failed, 2 something needed is missing (one line says what).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import nbformat

ROOT = Path(__file__).resolve().parents[1]
DEBIAN_CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM = Path(os.environ.get("CHROMIUM", DEBIAN_CHROMIUM))
# JupyterLab settings for a test: every cell in the DOM, the kernel started without asking, no news, no autosave.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none", "autoStartDefaultKernel": True},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false"},
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
}
PANEL = ".jp-NotebookPanel"
# In the page: the prompts of the code cells, and whether the kernel is connected and idle.
JS_STATE = """() => {
    const bar = document.querySelector('#jp-main-statusbar');
    const prompts = Array.from(document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-InputPrompt'));
    return {status: bar ? bar.innerText : '', prompts: prompts.map(p => p.innerText.trim())};
}"""
# An explorer is a VBox shown as a cell's output; tqdm's bars are HBoxes.
EXPLORER = ".jp-Cell-outputArea .jp-OutputArea-output > .widget-vbox"
# What an explorer shows (not its controls, whose readouts change at once in the page): the text of its summary and
# panels, and a fingerprint of its images.
JS_SHOWN = """el => [
    Array.from(el.querySelectorAll('.widget-html-content, .widget-output')).map(e => e.innerText).join(),
    Array.from(el.querySelectorAll('img')).map(i => i.src.length + i.src.slice(-64)).join()]"""
# Changed: the text, and the images too where there were any (a redraw replaces them).
JS_CHANGED = f"""([el, old]) => {{
    const now = ({JS_SHOWN})(el);
    return now[0] !== old[0] && (old[1] === '' || (now[1] !== '' && now[1] !== old[1]));
}}"""


class Lab(NamedTuple):
    """A running JupyterLab server: its base URL and its token."""

    url: str
    token: str


@dataclass
class Lesson:
    path: Path
    code_cells: int
    started: float = 0.0
    page: object = None
    problems: list[str] = field(default_factory=list)
    explorers: int = 0
    seconds: float = 0.0


def missing_requirement() -> str | None:
    """One line naming what this check needs and lacks (Chromium, the playwright package), or None."""
    if CHROMIUM == DEBIAN_CHROMIUM and not CHROMIUM.exists() and os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"installing chromium with apt-get ({CHROMIUM} is missing)", flush=True)
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.STDOUT, "env": {**os.environ,
                 "DEBIAN_FRONTEND": "noninteractive"}}
        subprocess.run(["apt-get", "update", "-q"], check=False, **quiet)
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], check=False, **quiet)
    if not CHROMIUM.exists():
        return (f"missing: Chromium at {CHROMIUM} (install Debian's `chromium` package as root, "
                "or set CHROMIUM=/path/to/chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "missing: the Python package `playwright` in this environment (pip install playwright)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_settings(folder: Path) -> None:
    """JupyterLab user settings (LAB_SETTINGS) into `folder`, as JUPYTERLAB_SETTINGS_DIR reads them."""
    for plugin, values in LAB_SETTINGS.items():
        path = folder / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values), encoding="utf-8")


@contextmanager
def jupyter_lab(root: Path, work: Path) -> Iterator[Lab]:
    """A JupyterLab server on a free port serving `root`; yields its URL and token; always stopped."""
    port, token = free_port(), secrets.token_hex(16)
    write_settings(work / "settings")
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(work / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(work / "workspaces"), "JUPYTER_RUNTIME_DIR": str(work / "runtime")}
    env.pop("MPLBACKEND", None)
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log = (work / "lab.log").open("w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_server(url, token, server)
        yield Lab(url, token)
    finally:
        stop(server)
        log.close()


def wait_for_server(url: str, token: str, server: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with status {server.returncode} before it answered")
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2).close()
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"JupyterLab did not answer at {url} within {timeout:.0f} s")


def stop(server: subprocess.Popen) -> None:
    """Stop the server and its kernels (its whole process group): SIGTERM, then SIGKILL after 15 s."""
    if server.poll() is not None:
        return
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def open_lesson(browser, lab: Lab, lesson: Lesson) -> None:
    """Open the lesson in a fresh page, wait until its kernel is idle, and start Run All."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(60_000)
    page.goto(f"{lab.url}/lab/tree/notebooks/{lesson.path.name}?token={lab.token}&reset")
    page.wait_for_function(
        """n => { const s = document.querySelector('#jp-main-statusbar');
                  return s && s.innerText.includes('| Idle') && !s.innerText.includes('No Kernel')
                      && document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell').length === n; }""",
        arg=lesson.code_cells, timeout=120_000)
    lesson.page, lesson.started = page, time.monotonic()
    for _attempt in range(3):  # the first click can land while the kernel is being (re)connected
        page.click('.lm-MenuBar-itemLabel:text-is("Run")')
        page.click('[data-command="runmenu:run-all"]')
        try:
            page.wait_for_function(f"""() => ({JS_STATE})().prompts.some(p => p !== '[ ]:')""", timeout=20_000)
            return
        except Exception:  # noqa: BLE001 (playwright's TimeoutError: try the menu again)
            page.keyboard.press("Escape")
    lesson.problems.append("Run All did not start any cell")


def finished(lesson: Lesson) -> bool:
    """True once no cell is queued or running and the kernel is idle (then Run All has ended, or stopped)."""
    if lesson.problems:
        return True
    state = lesson.page.evaluate(JS_STATE)
    return "| Idle" in state["status"] and not any(p == "[*]:" for p in state["prompts"])


def check_run(lesson: Lesson, copy: Path) -> None:
    """Every code cell ran, and none shows an error: read from the DOM and from the notebook as the page saved it."""
    prompts = lesson.page.evaluate(JS_STATE)["prompts"]
    not_run = [i + 1 for i, p in enumerate(prompts) if not p.strip("[]: ").isdigit()]
    if not_run:
        lesson.problems.append(f"code cells {not_run[:10]} have no execution count")
    stamp = copy.stat().st_mtime_ns
    lesson.page.click(f'{PANEL} [data-command="docmanager:save"]')
    deadline = time.monotonic() + 60
    while copy.stat().st_mtime_ns == stamp and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)  # the write may still be in progress when its time stamp moves
    saved = nbformat.read(copy, as_version=4)
    code = [c for c in saved.cells if c.cell_type == "code"]
    for number, cell in enumerate(code, start=1):
        for out in cell.outputs:
            if out.output_type == "error":
                lesson.problems.append(f"code cell {number} raised {out.ename}: {out.evalue}")


def move_explorers(lesson: Lesson, timeout_ms: int = 60_000) -> None:
    """In each explorer, change one control (a slider, else a menu, else a text box); wait for the view to change."""
    page = lesson.page
    explorers = page.locator(EXPLORER)
    lesson.explorers = explorers.count()
    if lesson.explorers == 0:
        lesson.problems.append("no explorer (an ipywidgets VBox) is displayed")
    for index in range(lesson.explorers):
        box = explorers.nth(index)
        box.scroll_into_view_if_needed()
        before = shown_state(box)
        control = change_one_control(box)
        try:
            page.wait_for_function(JS_CHANGED, arg=[box.element_handle(), before], timeout=timeout_ms)
        except Exception:  # noqa: BLE001 (playwright's TimeoutError)
            lesson.problems.append(f"explorer {index + 1}: moving its {control} changed nothing shown")
            continue
        if "❌" in box.inner_text():
            lesson.problems.append(f"explorer {index + 1}: moving its {control} was rejected: {box.inner_text()[:200]}")


def shown_state(box) -> list[str]:
    return box.evaluate(JS_SHOWN)


def change_one_control(box) -> str:
    """Change the first slider (one step by keyboard), else the first menu, else the first text box; name it."""
    handles = box.locator(".noUi-handle")
    if handles.count():
        handle = handles.first
        at_max = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
        handle.focus()
        handle.press("ArrowLeft" if at_max else "ArrowRight")
        return "slider"
    menus = box.locator("select")
    if menus.count():
        menu = menus.first
        options = menu.locator("option").all_inner_texts()
        current = menu.evaluate("m => m.options[m.selectedIndex].text")
        menu.select_option(label=next(o for o in options if o != current))
        return "menu"
    text = box.locator("input[type=text]").first
    text.fill(text.input_value() + "s")
    text.press("Enter")
    return "text box"


def screenshot(lesson: Lesson, out: Path) -> None:
    """The lesson's first explorer (or its top) in view, saved as out/NN_topic.png."""
    page = lesson.page
    if lesson.explorers:
        page.locator(EXPLORER).first.scroll_into_view_if_needed()
    page.screenshot(path=str(out / f"{lesson.path.stem}.png"))


def shut_down_kernel(lab: Lab, name: str) -> None:
    """Delete the server's session of notebook `name`, so a finished lesson's kernel frees its memory and core."""
    with urllib.request.urlopen(f"{lab.url}/api/sessions?token={lab.token}", timeout=10) as response:
        sessions = json.load(response)
    for session in sessions:
        if not session.get("path", "").endswith(name):
            continue
        request = urllib.request.Request(f"{lab.url}/api/sessions/{session['id']}?token={lab.token}",
                                         method="DELETE")
        urllib.request.urlopen(request, timeout=30).close()


def lessons(root: Path, prefixes: list[str]) -> list[Lesson]:
    """The lessons in notebooks/ in course order (NN_topic.ipynb), or those whose name starts with a prefix."""
    paths = sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if prefixes:
        paths = [p for p in paths if any(p.name.startswith(prefix) for prefix in prefixes)]
    return [lesson_at(p) for p in paths]


def lesson_at(path: Path) -> Lesson:
    return Lesson(path, sum(cell.cell_type == "code" for cell in nbformat.read(path, as_version=4).cells))


def run(todo: list[Lesson], out: Path, jobs: int = 2, timeout: float = 1200,
        explorer_timeout: float = 60) -> list[Lesson]:
    """Run the lessons, `jobs` at a time (each in its own page and kernel); return them with their problems.

    A lesson may run for `timeout` seconds; an explorer has `explorer_timeout` seconds to show a change.
    """
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="browser-test-") as tmp:
        work = Path(tmp)
        (work / "root" / "notebooks").mkdir(parents=True)
        for lesson in todo:
            shutil.copy2(lesson.path, work / "root" / "notebooks" / lesson.path.name)
        with jupyter_lab(work / "root", work) as lab, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
            waiting, active, done = list(todo), [], []
            while waiting or active:
                while waiting and len(active) < jobs:
                    lesson = waiting.pop(0)
                    open_lesson(browser, lab, lesson)
                    active.append(lesson)
                for lesson in list(active):
                    over = time.monotonic() - lesson.started > timeout
                    if over:
                        lesson.problems.append(f"still running after {timeout:.0f} s")
                    if over or finished(lesson):
                        finish(lesson, work / "root" / "notebooks" / lesson.path.name, out, explorer_timeout)
                        shut_down_kernel(lab, lesson.path.name)
                        active.remove(lesson)
                        done.append(lesson)
                time.sleep(1)
            browser.close()
    return done


def finish(lesson: Lesson, copy: Path, out: Path, explorer_timeout: float) -> None:
    """Check a lesson whose run has ended: its cells, its explorers, its screenshot; then close its page."""
    lesson.seconds = time.monotonic() - lesson.started
    if not lesson.problems:
        check_run(lesson, copy)
        move_explorers(lesson, int(explorer_timeout * 1000))
    screenshot(lesson, out)
    lesson.page.close()
    verdict = "ok" if not lesson.problems else "FAILED"
    print(f"{lesson.path.name}: {verdict} ({lesson.seconds:.0f} s, {lesson.explorers} explorer(s))", flush=True)
    for problem in lesson.problems:
        print(f"  {problem}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("lessons", nargs="*", help="name prefixes, e.g. 01 04 (default: every lesson)")
    parser.add_argument("--out", type=Path, default=ROOT / "test-artifacts", help="where screenshots go")
    parser.add_argument("--jobs", type=int, default=2, help="lessons run at once (default 2)")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds one lesson may run (default 1200)")
    parser.add_argument("--setup", action="store_true", help="only install what is missing (Chromium), then exit")
    args = parser.parse_args(argv)
    problem = missing_requirement()
    if problem:
        print(f"test-browser: {problem}", file=sys.stderr)
        return 2
    if args.setup:
        return 0
    todo = lessons(ROOT, args.lessons)
    if not todo:
        print(f"test-browser: no lesson in {ROOT / 'notebooks'} matches {args.lessons}", file=sys.stderr)
        return 2
    start = time.monotonic()
    done = run(todo, args.out, max(1, args.jobs), args.timeout)
    failed = [lesson for lesson in done if lesson.problems]
    print(f"{len(done)} lessons in {time.monotonic() - start:.0f} s; screenshots in {args.out}")
    print(f"browser: {len(done) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
