"""Sphinx extension: each script of a page appears once in its ``<head>``.

Sphinx 7 (the line Jupyter Book 1 runs on) lists an inline script that an extension adds once the builder has
started twice: once as registered (file name ``''``) and once as given (``None``). sphinx-thebe's
``const THEBE_JS_URL = ...`` then runs twice, and the second copy throws "Identifier 'THEBE_JS_URL' has already
been declared" on every page. Sphinx 8.2 fixed it upstream (sphinx-doc/sphinx#13402); until the book moves
there, this drops the second copy when a page is written.
"""

from __future__ import annotations


def _key(script) -> tuple:
    return (script.filename or "", script.priority, tuple(sorted(script.attributes.items())))


def drop_repeated_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple] = set()
    unique = []
    for script in scripts:
        if not hasattr(script, "priority"):  # not an asset object: leave it alone
            unique.append(script)
        elif (key := _key(script)) not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    # Late, after the handlers that add a page's own scripts (MathJax, notebook widgets).
    app.connect("html-page-context", drop_repeated_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
