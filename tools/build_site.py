"""The course as a static site: every lesson with its stored outputs as HTML, and a contents page in course order.

    python tools/build_site.py [--out site]

Pages are built from the outputs stored in notebooks/ (nothing is executed). An explorer shows its
state as text and its figure as an image; progress bars are left out; any other widget is named as
one. Figures are written as PNG files beside each page. Maths is rendered by MathJax: a local copy
is copied into the site when one is installed (Debian's `libjs-mathjax`, or MATHJAX_DIR), so the
site renders maths offline; otherwise the pages load MathJax from its CDN, and offline a formula
shows as its TeX source.
"""

from __future__ import annotations

import argparse
import copy
import html
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter
from traitlets.config import Config

ROOT = Path(__file__).resolve().parents[1]
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
CDN_MATHJAX = "https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/latest.js?config=TeX-AMS_CHTML-full,Safe"
LOCAL_MATHJAX = "mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe"
MATHJAX_DIRS = [Path(os.environ["MATHJAX_DIR"])] if os.environ.get("MATHJAX_DIR") else []
MATHJAX_DIRS.append(Path("/usr/share/javascript/mathjax"))
# What the TeX-AMS_CHTML-full configuration loads, relative to MathJax's folder.
MATHJAX_PARTS = ["MathJax.js", "config/TeX-AMS_CHTML-full.js", "config/Safe.js", "extensions", "jax/input/TeX",
                 "jax/output/CommonHTML", "jax/element", "fonts/HTML-CSS/TeX/woff"]
PROGRESS_BAR = re.compile(r"\d+%\|")
# The template's require.js (for JavaScript outputs, which the lessons have none of) would come from a CDN.
REQUIRE_JS = re.compile(r'<script src="https?://[^"]*require[^"]*"></script>\n?')
WIDGET_REPR = re.compile(r"^\w+\((children|value|layout)=")
STYLE = """<style>
.course-nav { font: 15px sans-serif; padding: 8px 16px; border-bottom: 1px solid #ddd; display: flex; gap: 2em; }
.course-index { font: 16px/1.5 sans-serif; max-width: 58em; margin: 2em auto; padding: 0 1em; }
.course-index ul { list-style: none; padding: 0; }
.course-index li { margin-bottom: 0.8em; }
</style>"""


@dataclass
class Page:
    notebook: Path
    title: str
    blurb: str

    @property
    def href(self) -> str:
        return f"{self.notebook.stem}.html"


def lesson_pages(root: Path) -> list[Page]:
    """The lessons in course order (NN_topic), each with its first heading and its course-map line from the README."""
    blurbs = course_map(root / "README.md")
    pages = []
    for path in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        pages.append(Page(path, title_of(nb, path.stem), blurbs.get(path.stem, "")))
    return pages


def course_map(readme: Path) -> dict[str, str]:
    """notebook name -> "what you learn", from the README's course map rows (| NN | `name` | items | text |)."""
    if not readme.exists():
        return {}
    rows = re.findall(r"^\|\s*\d+\s*\|\s*`([^`]+)`\s*\|[^|]*\|\s*(.+?)\s*\|\s*$", readme.read_text(encoding="utf-8"),
                      flags=re.M)
    return dict(rows)


def title_of(nb: nbformat.NotebookNode, fallback: str) -> str:
    """The text of the notebook's first Markdown heading, or `fallback`."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#+\s+(.+)$", cell.source, flags=re.M)
            if match:
                return match.group(1).strip()
    return fallback


def static_outputs(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy whose widget outputs are static: an explorer's state text and figure, no progress bars, no widget repr."""
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [static for output in cell.outputs for static in static_output(output)]
    return nb


def static_output(output: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    """What a static page shows of one output (a widget's output becomes its image and its text, or nothing)."""
    data = output.get("data", {})
    if WIDGET_VIEW not in data:
        return [output]
    text = data.get("text/plain", "")
    if PROGRESS_BAR.search(text) and "image/png" not in data:
        return []  # a progress bar: its stored state is its first frame
    if WIDGET_REPR.match(text):
        text = "(an interactive widget: run the notebook to use it)"
    shown = []
    if "image/png" in data:
        shown.append(nbformat.v4.new_output("display_data", data={"image/png": data["image/png"]}))
    shown.append(nbformat.v4.new_output("display_data", data={"text/plain": text}))
    return shown


def exporter(mathjax_url: str) -> HTMLExporter:
    config = Config()
    config.HTMLExporter.mathjax_url = mathjax_url
    config.HTMLExporter.template_name = "lab"
    config.ExtractOutputPreprocessor.enabled = True
    return HTMLExporter(config=config)


def write_lesson(page: Page, pages: list[Page], out: Path, html_exporter: HTMLExporter) -> None:
    """out/NN_topic.html with its figures in out/NN_topic_files/, and links to the contents and its neighbours."""
    nb = static_outputs(nbformat.read(page.notebook, as_version=4))
    files = f"{page.notebook.stem}_files"
    body, resources = html_exporter.from_notebook_node(
        nb, resources={"output_files_dir": files, "metadata": {"name": page.title}})
    for name, content in resources.get("outputs", {}).items():
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    (out / page.href).write_text(with_navigation(body, page, pages), encoding="utf-8")


def with_navigation(body: str, page: Page, pages: list[Page]) -> str:
    """The page with a bar on top: the contents page, the previous and the next lesson."""
    at = pages.index(page)
    links = ['<a href="index.html">Contents</a>']
    if at > 0:
        links.append(f'<a href="{pages[at - 1].href}">← {html.escape(pages[at - 1].title)}</a>')
    if at + 1 < len(pages):
        links.append(f'<a href="{pages[at + 1].href}">{html.escape(pages[at + 1].title)} →</a>')
    bar = f'<nav class="course-nav">{" ".join(links)}</nav>'
    body = REQUIRE_JS.sub("", body).replace("</head>", f"{STYLE}\n</head>", 1)
    return re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + bar, body, count=1)


def write_index(pages: list[Page], out: Path, course_title: str, mathjax_url: str) -> None:
    """out/index.html: the course's title and its lessons in order, each with what it teaches."""
    items = "\n".join(f'<li><a href="{p.href}">{html.escape(p.title)}</a><br>{inline_code(p.blurb)}</li>'
                      for p in pages)
    (out / "index.html").write_text(f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(course_title)}</title>
<script src="{html.escape(mathjax_url)}"></script>
<script type="text/x-mathjax-config">MathJax.Hub.Config({{tex2jax: {{inlineMath: [['$', '$']]}}}});</script>
{STYLE}</head>
<body><main class="course-index"><h1>{html.escape(course_title)}</h1>
<p>The lessons, in course order, with the outputs stored in the notebooks.
Open a notebook in JupyterLab to run it and to use its explorers.</p>
<ul>
{items}
</ul></main></body></html>
""", encoding="utf-8")


def inline_code(text: str) -> str:
    """Escaped text whose `backquoted` parts are set as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def copy_mathjax(out: Path) -> Path | None:
    """Copy the parts of a local MathJax 2 that the pages use into out/mathjax; return where it came from, or None."""
    for source in MATHJAX_DIRS:
        if all((source / part).exists() for part in MATHJAX_PARTS):
            for part in MATHJAX_PARTS:
                target = out / "mathjax" / part
                target.parent.mkdir(parents=True, exist_ok=True)
                if (source / part).is_dir():
                    shutil.copytree(source / part, target, dirs_exist_ok=True)
                else:
                    shutil.copy2(source / part, target)
            return source
    return None


def readme_title(root: Path) -> str:
    readme = root / "README.md"
    match = re.search(r"^# (.+)$", readme.read_text(encoding="utf-8"), flags=re.M) if readme.exists() else None
    return match.group(1).strip() if match else "Course"


def build(root: Path, out: Path) -> list[Page]:
    """Write the site for the course at `root` into `out` (emptied first); return its lesson pages in order."""
    pages = lesson_pages(root)
    if not pages:
        raise ValueError(f"{root / 'notebooks'} has no lesson (NN_topic.ipynb)")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    source = copy_mathjax(out)
    mathjax_url = LOCAL_MATHJAX if source else CDN_MATHJAX
    html_exporter = exporter(mathjax_url)
    for page in pages:
        write_lesson(page, pages, out, html_exporter)
    write_index(pages, out, readme_title(root), mathjax_url)
    if source:
        print(f"maths: MathJax copied from {source}; the site renders maths offline")
    else:
        print("maths: no local MathJax (Debian: apt-get install libjs-mathjax, or set MATHJAX_DIR); the pages load "
              "it from its CDN when online, and offline a formula shows as its TeX source")
    return pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "site", help="the folder to write (default: site/)")
    args = parser.parse_args(argv)
    try:
        pages = build(ROOT, args.out)
    except ValueError as problem:
        print(f"site: {problem}", file=sys.stderr)
        return 2
    print(f"site: {len(pages)} lessons and a contents page in {args.out} (open {args.out / 'index.html'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
