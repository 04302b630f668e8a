"""The HTML of a feedback page around nbgrader's: its template and converter, and the MathJax it loads.

``TEMPLATE`` extends nbgrader's feedback template: the summary table (``feedback.Summary``) at the top in place of
nbgrader's list of "Test cell (Score ...)" links, the notebook below. ``GenerateFeedbackPage`` is nbgrader's
``GenerateFeedback`` rendering with it, the students' Markdown and HTML cleaned (``clean_markdown_html``: bleach
keeps what Markdown makes, headings and paragraphs included, and drops scripts, event handlers, styles and any
image that is not inline), never run.

Math: nbgrader's template loads MathJax 2 from a CDN. The pages load MathJax 3 from ``mathjax/`` beside them
instead, the copy the course's site serves (the ``sphinx-mathjax-offline`` package of ``requirements.txt``): a
page reveals nothing to a third party when a student opens it, and shows its math offline. ``mathjax_beside``
puts it there: the files are copied once into the grader's ``.autograder/mathjax/`` and hard-linked beside every
page (a copy where the file system has no hard links), so each ``feedback/<student>/<assignment>/`` folder can be
handed out on its own at almost no cost in disk space, and ``feedback/`` holds only students' folders.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pathlib
import shutil

import bleach
import jinja2
from nbgrader.converters import GenerateFeedback

MATHJAX_PACKAGE = "sphinx-mathjax-offline"  # the site's MathJax 3 (a Sphinx extension holding MathJax's files)
MATHJAX_FILES = ("tex-chtml.js", "output/chtml/fonts/woff-v2", "input/tex/extensions", "ui")
MATHJAX_FOLDER = "mathjax"  # beside each page

TEMPLATE_FILE = "autograder_feedback.html.j2"
TEMPLATE = """{%- extends 'index.html.j2' -%}
{% block body %}
<body>
  <a name="top"></a>
  <div class="container">
    <div class="panel panel-default">
      <div class="panel-heading">
        <h4>{{ resources.nbgrader.notebook }} (Score: {{ resources.nbgrader.score | float | round(2) }} / {{
          resources.nbgrader.max_score | float | round(2) }})</h4>
      </div>
      <div class="panel-body">
        {{ resources.autograder.summary }}
        <div id="notebook" class="border-box-sizing">
          <div class="container" id="notebook-container">
            {{ self.body_loop() }}
          </div>
        </div>
      </div>
    </div>
  </div>
</body>
{%- endblock body %}
"""

# The macro nbconvert's and nbgrader's templates call to load MathJax, replaced: MathJax 3 from beside the page.
MATHJAX_MACRO = """{%- macro mathjax(url=None) -%}
<script>
window.MathJax = {
  tex: {inlineMath: [["$", "$"], ["\\\\(", "\\\\)"]], displayMath: [["$$", "$$"], ["\\\\[", "\\\\]"]],
        processEscapes: true, processEnvironments: true},
  loader: {load: ["ui/safe"]},
  options: {ignoreHtmlClass: "tex2jax_ignore", processHtmlClass: "tex2jax_process"}
};
</script>
<script defer src="MATHJAX/tex-chtml.js"></script>
{%- endmacro %}
""".replace("MATHJAX", MATHJAX_FOLDER)


class GenerateFeedbackPage(GenerateFeedback):
    """nbgrader's converter, rendering with ``TEMPLATE`` (Jinja loaders are not a configurable trait)."""

    def convert_notebooks(self) -> None:
        self.exporter.extra_loaders = [
            jinja2.DictLoader({TEMPLATE_FILE: TEMPLATE, "mathjax.html.j2": MATHJAX_MACRO}),
        ]
        self.exporter.template_file = TEMPLATE_FILE
        # The students' Markdown and HTML are cleaned (bleach), never run: nbconvert's own switch covers its
        # templates, and nbgrader's feedback template renders Markdown cells itself, through this filter.
        self.exporter.sanitize_html = True
        render = self.exporter.markdown2html

        @jinja2.pass_context
        def markdown2html(context, source):
            return clean_markdown_html(render(context, source))

        self.exporter.filters = {**self.exporter.filters, "markdown2html": markdown2html}
        super().convert_notebooks()


# What Markdown makes (nbconvert's renderer: headings with their anchors, lists, tables, code), nothing that runs.
MARKDOWN_TAGS = frozenset(bleach.ALLOWED_TAGS) | {
    *(f"h{level}" for level in range(1, 7)),
    *("p", "div", "span", "pre", "code", "br", "hr", "img", "del", "sup", "sub", "dl", "dt", "dd"),
    *("table", "thead", "tbody", "tr", "th", "td"),
}


def _allowed(tag: str, name: str, value: str) -> bool:
    if name in ("class", "id", "title") or (tag in ("td", "th") and name in ("align", "colspan", "rowspan")):
        return True
    if tag == "a" and name == "href":
        return value.startswith(("http://", "https://", "mailto:", "#"))  # a link fetches nothing by itself
    if tag == "img" and name == "alt":
        return True
    return tag == "img" and name == "src" and value.startswith("data:image/")  # inline images only


def clean_markdown_html(html_text: str) -> str:
    """Rendered Markdown of a student's notebook, made safe to show (bleach)."""
    protocols = ["http", "https", "mailto", "data"]
    return bleach.clean(str(html_text), tags=MARKDOWN_TAGS, attributes=_allowed, protocols=protocols)


# ---------------------------------------------------------------------------------------------------- MathJax
def mathjax_source() -> pathlib.Path | None:
    """MathJax 3's folder in the installed ``sphinx-mathjax-offline`` (None when it is not installed)."""
    spec = importlib.util.find_spec(MATHJAX_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = pathlib.Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax"
    return folder if (folder / "tex-chtml.js").is_file() else None


def _files(root: pathlib.Path) -> list[pathlib.Path]:
    out = []
    for name in MATHJAX_FILES:
        path = root / name
        out += [p for p in sorted(path.rglob("*")) if p.is_file()] if path.is_dir() else [path]
    return [p.relative_to(root) for p in out]


def shared_mathjax(shared: pathlib.Path) -> pathlib.Path | None:
    """The folder ``shared``, with the files of the installed MathJax copied in where they are missing or differ
    in size (None when MathJax is not installed)."""
    source = mathjax_source()
    if source is None:
        return None
    for name in _files(source):
        target = shared / name
        if not target.exists() or target.stat().st_size != (source / name).stat().st_size:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / name, target)
    return shared


def mathjax_beside(page_folder: pathlib.Path, shared: pathlib.Path) -> None:
    """Put ``mathjax/`` beside a page: hard links to ``shared``'s files (copies where links cannot be made)."""
    for name in _files(shared):
        target = page_folder / MATHJAX_FOLDER / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        try:
            os.link(shared / name, target)
        except OSError:
            shutil.copyfile(shared / name, target)
