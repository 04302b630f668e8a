"""Sphinx extension: pages carry no widget state, since the site has no widget runtime to use it.

Explorers show their static figures on the site (``CNNBOOK_STATIC_WIDGETS``), and ``nb_ipywidgets_js: {}`` loads
no widget manager. The live explorer is still built while a notebook executes (so a broken one fails the build),
and the executor records every widget's state in the notebook's metadata; MyST-NB then writes that state into the
page as a ``<script type="application/vnd.jupyter.widget-state+json">`` that nothing reads: hundreds of kilobytes
on an explorer page. This drops it when a page is written; the notebooks themselves are unchanged.
"""

from __future__ import annotations

WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def drop_widget_state(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if scripts and not getattr(app.config, "nb_ipywidgets_js", None):  # no widget manager loaded to use it
        context["script_files"] = [s for s in scripts if getattr(s, "attributes", {}).get("type") != WIDGET_STATE]


def setup(app):
    app.connect("html-page-context", drop_widget_state, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
