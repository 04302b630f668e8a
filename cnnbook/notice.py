"""Visible notices: the way the course tells a reader that something differs from the full-scale run.

A notice is shown as a coloured box in Jupyter, Colab and the published site, and as plain text elsewhere.
Used by :mod:`cnnbook.data` when a stand-in replaces a real dataset (lecture 01 introduces it).
"""

from __future__ import annotations

import html
import sys

_COLOURS = {"info": ("#e7f1fb", "#1f6fb2"), "warning": ("#fff4e0", "#b26a00")}


class Notice:
    """A titled message with an HTML and a plain-text form."""

    def __init__(self, title: str, body: str, level: str = "warning"):
        if level not in _COLOURS:
            raise ValueError(f"level must be one of {sorted(_COLOURS)}, got {level!r}")
        self.title, self.body, self.level = title, body, level

    def __str__(self) -> str:
        return f"[{self.level.upper()}] {self.title}: {self.body}"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        background, border = _COLOURS[self.level]
        return (
            f'<div class="cnnbook-notice cnnbook-notice-{self.level}" style="background:{background};'
            f"border-left:4px solid {border};padding:0.6em 0.9em;margin:0.4em 0;border-radius:3px;"
            f'color:#222"><strong>{html.escape(self.title)}</strong><br>{html.escape(self.body)}</div>'
        )


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    ip = shell.get_ipython()
    return ip is not None and getattr(ip, "kernel", None) is not None


def announce(title: str, body: str, level: str = "warning") -> Notice:
    """Show a notice now (a box in a notebook, a line on stdout elsewhere) and return it."""
    notice = Notice(title, body, level)
    if _in_notebook():
        from IPython.display import display

        display(notice)
    else:
        print(notice, flush=True)
    return notice
