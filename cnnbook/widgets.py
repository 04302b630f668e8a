"""Interactive explorers with a static figure for the published site (introduced in lecture 02).

An explorer is a pair: a function that builds the live ipywidgets UI (Colab, Jupyter) and a function that draws
a Matplotlib figure of one representative setting. :func:`show` displays the live UI when a kernel is there to
drive it, and the static figure when the notebook is being executed for the site (``CNNBOOK_STATIC_WIDGETS=1``,
set by ``make book``), where no kernel stays behind the page. In that mode the live UI is still built, so a
broken explorer fails the build instead of failing a student in Colab.

The explorer modules (``conv_explorer``, ``pool_explorer``, ``augment_explorer``) name their entry points alike:
``build_live(...)`` returns the widget, ``draw_static(...)`` returns the site's figure, and
``explore_<topic>(...)`` (what a notebook calls) shows one of them through :func:`show`. An explorer of given
data (the images of ``augment_explorer``) takes them as the first argument of all three.
"""

from __future__ import annotations

import os
from collections.abc import Callable


def static_mode() -> bool:
    """Whether explorers should show their static figure (book builds) rather than live widgets."""
    return os.environ.get("CNNBOOK_STATIC_WIDGETS", "").strip() not in ("", "0")


def show(build_live: Callable[[], object], draw_static: Callable[[], object], *, caption: str = "") -> object:
    """Display an explorer: the live widget, or in static mode its figure and a caption; returns what is shown."""
    from IPython.display import Markdown, display

    live = build_live()  # always built: an explorer that cannot be built is an error everywhere
    if not static_mode():
        display(live)
        return live
    import matplotlib.pyplot as plt

    figure = draw_static()
    display(figure)
    plt.close(figure)
    note = "Static view of an interactive explorer: open this notebook in Colab or Jupyter to change the settings."
    display(Markdown(f"*{caption + ' ' if caption else ''}{note}*"))
    return figure
