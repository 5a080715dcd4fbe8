"""The static site (make site) and what it shows of an explorer: its state as text and its figure."""

import base64
import html
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import ipywidgets as W
import matplotlib
import nbformat
import pytest
from IPython.core.formatters import DisplayFormatter
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from course_utils.viz.ch01 import LikelihoodExplorer
from course_utils.viz.explorer import Explorer

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))  # the scripts under tools/ import as modules
import build_site as builder  # noqa: E402

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_REPR = re.compile(r"\b[VH]Box\(children=|\w+\(children=\(")
LINK = re.compile(r'\b(?:href|src)="([^"]+)"')


def bundle(obj) -> dict:
    data, _metadata = DisplayFormatter().format(obj)
    return data


class ChoiceExplorer(Explorer):
    """A menu and an HTML panel: the state text gives the menu's label and the panel's text."""

    def __init__(self) -> None:
        self.menu = W.Dropdown(options=[("first", 1), ("second", 2)], value=2, description="pick")
        self.words = W.Text(value="a b", description="words")
        self.panel = W.HTML()
        super().__init__([[self.menu, self.words]], draw=False, panels=[self.panel])

    def compute(self) -> str:
        self.panel.value = f"<pre>{html.escape(self.words.value)} &lt;{self.menu.value}&gt;</pre>"
        return f"<b>value</b> = {self.menu.value}"


def test_explorer_output_holds_the_widget_its_state_as_text_and_its_figure():
    e = LikelihoodExplorer(flips="HTHH", theta=0.5, draw=True)
    data = bundle(e)
    assert set(data) == {WIDGET_VIEW, "text/plain", "image/png"}
    assert data[WIDGET_VIEW]["model_id"] == e.widget.model_id
    lines = data["text/plain"].splitlines()
    assert lines[:3] == ["LikelihoodExplorer", "  flips: 'HTHH'", "  θ: 0.50"]
    assert lines[3:] == ["k = 3 heads in n = 4 flips · MLE θ̂ = k/n = 0.7500 · at θ = 0.50: L = 0.0625, ℓ = -2.7726"]
    assert base64.b64decode(data["image/png"]).startswith(b"\x89PNG\r\n\x1a\n")
    e.theta.value = 0.75
    moved = bundle(e)
    assert moved["text/plain"].splitlines()[2] == "  θ: 0.75" and "at θ = 0.75" in moved["text/plain"]
    assert moved["image/png"] != data["image/png"]
    e.flips.value = "HXH"  # rejected: the ❌ line is the state, and there is no figure
    rejected = bundle(e)
    assert "image/png" not in rejected and rejected["text/plain"].splitlines()[-1].startswith("❌")


def test_state_text_gives_a_menus_label_quoted_text_and_the_panels_text():
    e = ChoiceExplorer()
    assert e.state_text() == "ChoiceExplorer\n  pick: second\n  words: 'a b'\nvalue = 2\na b <2>"
    assert "image/png" not in bundle(e)


def _executed_explorer_output(explorer) -> nbformat.NotebookNode:
    data = bundle(explorer)
    return new_output("display_data", data=data)


@pytest.fixture(scope="module")
def sample_site(tmp_path_factory):
    """A course of one lesson whose outputs hold an explorer, a progress bar and an old widget repr."""
    root = tmp_path_factory.mktemp("course")
    (root / "README.md").write_text("# A course\n\n| # | notebook | items | what |\n|---|---|---|---|\n"
                                    "| 01 | `01_one` | 1 item, 1 point | the `one` idea, $x^2$ |\n", encoding="utf-8")
    (root / "notebooks").mkdir()
    explorer = new_code_cell("LikelihoodExplorer()", outputs=[_executed_explorer_output(
        LikelihoodExplorer(flips="HHT", theta=0.25, draw=True))])
    bar = new_code_cell("train()", outputs=[new_output("display_data", data={
        WIDGET_VIEW: {"model_id": "0", "version_major": 2, "version_minor": 0},
        "text/plain": "training:   0%|          | 0/300 [00:00<?, ?it/s]"})])
    old = new_code_cell("old()", outputs=[new_output("display_data", data={
        WIDGET_VIEW: {"model_id": "1", "version_major": 2, "version_minor": 0},
        "text/plain": "VBox(children=(HBox(children=(Text(value='HTHH'),)),))"})])
    nb = new_notebook(cells=[new_markdown_cell("# 01 · One\n\nMaths: $\\hat\\theta = k/n$."), explorer, bar, old])
    nbformat.write(nb, root / "notebooks" / "01_one.ipynb")
    out = root / "site"
    builder.build(root, out)
    return out


def test_sample_site_shows_the_explorers_state_and_figure_and_no_widget_repr(sample_site):
    page = html.unescape((sample_site / "01_one.html").read_text(encoding="utf-8"))
    assert "LikelihoodExplorer\n  flips: 'HHT'\n  θ: 0.25\nk = 2 heads in n = 3 flips" in page
    images = [src for src in LINK.findall(page) if src.endswith(".png")]
    assert len(images) == 1 and (sample_site / images[0]).read_bytes().startswith(b"\x89PNG")
    assert "0/300" not in page, "a progress bar's first frame is left out"
    assert not WIDGET_REPR.search(page) and "an interactive widget: run the notebook to use it" in page
    index = (sample_site / "index.html").read_text(encoding="utf-8")
    assert '<a href="01_one.html">01 · One</a>' in index and "the <code>one</code> idea, $x^2$" in index


def test_course_map_and_titles_come_from_the_readme_and_the_notebooks():
    pages = builder.lesson_pages(ROOT)
    names = [p.notebook.name for p in pages]
    assert names == sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")) and len(names) >= 6
    assert all(p.title and not p.title.startswith("#") for p in pages)
    mapped = builder.course_map(ROOT / "README.md")
    assert set(mapped) >= {"01_mle_coin_flips", "06_fine_tuning_as_mle"}
    assert pages[0].blurb == mapped["01_mle_coin_flips"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The repository's site, built by the command `make site` runs."""
    out = tmp_path_factory.mktemp("site") / "site"
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "build_site.py"), "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("maths: "), done.stdout
    return out


def _pages(out: Path) -> list[Path]:
    return sorted(out.glob("*.html"))


def test_site_has_a_contents_page_linking_every_lesson_in_course_order(site):
    index = (site / "index.html").read_text(encoding="utf-8")
    linked = [href for href in LINK.findall(index) if href.endswith(".html")]
    lessons = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert linked == [f"{stem}.html" for stem in lessons]
    assert {p.name for p in _pages(site)} == {"index.html", *linked}


def test_every_link_and_image_on_every_page_resolves(site):
    broken = []
    for page in _pages(site):
        text = page.read_text(encoding="utf-8")
        ids = {html.unescape(i) for i in re.findall(r'\bid="([^"]+)"', text)}
        for link in LINK.findall(text):
            link = html.unescape(link)
            if link.startswith(("https://", "http://", "data:", "mailto:")):
                continue
            target, _, anchor = link.partition("#")
            path = unquote(target.split("?")[0])
            if path and not (site / path).is_file():
                broken.append(f"{page.name}: {link}")
            elif not path and anchor not in ids and unquote(anchor) not in ids:
                broken.append(f"{page.name}: #{anchor}")
    assert broken == []


def test_pages_load_nothing_from_outside_but_mathjax_and_show_no_widget_repr(site):
    local_mathjax = (site / "mathjax" / "MathJax.js").is_file()
    for page in _pages(site):
        text = page.read_text(encoding="utf-8")
        scripts = re.findall(r'<script[^>]*\bsrc="([^"]+)"', text)
        assert scripts and all(s.split("?")[0].endswith("MathJax.js") or s.split("?")[0].endswith("latest.js")
                               for s in scripts), (page.name, scripts)
        assert all(s.startswith("mathjax/") == local_mathjax for s in scripts), (page.name, scripts)
        assert not WIDGET_REPR.search(text), page.name


def test_every_stored_figure_is_on_its_page(site):
    for lesson in builder.lesson_pages(ROOT):
        nb = builder.static_outputs(nbformat.read(lesson.notebook, as_version=4))
        figures = sum("image/png" in out.get("data", {}) for cell in nb.cells for out in cell.get("outputs", []))
        text = (site / lesson.href).read_text(encoding="utf-8")
        assert len([src for src in LINK.findall(text) if src.endswith(".png")]) == figures, lesson.href
