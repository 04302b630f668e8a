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

On a phone the page is about 360 px wide, and a figure drawn for a wide page shrinks until its numbers cannot be
read. So ``draw_static`` also takes ``narrow=True`` and then draws the same content stacked, for a narrow
screen; :func:`show` puts both in one ``<picture>`` and the browser shows the narrow one on narrow screens.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Callable

NARROW_SCREEN = "(max-width: 640px)"  # CSS media query: phones, where the narrow figure is shown
WIDE_DPI, NARROW_DPI = 100, 200  # pixels per inch of the two PNGs; the narrow one is sharp on phone screens


def static_mode() -> bool:
    """Whether explorers should show their static figure (book builds) rather than live widgets."""
    return os.environ.get("CNNBOOK_STATIC_WIDGETS", "").strip() not in ("", "0")


def png_data_url(figure, dpi: int) -> str:
    """The figure as a ``data:image/png;base64,...`` URL (cropped to what is drawn, as Jupyter shows it)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def picture_html(wide, narrow, alt: str) -> str:
    """One ``<picture>``: the ``narrow`` figure on narrow screens (at twice the density), ``wide`` elsewhere."""
    return (
        f'<picture class="cnnbook-explorer">'
        f'<source media="{NARROW_SCREEN}" srcset="{png_data_url(narrow, NARROW_DPI)} 2x">'
        f'<img src="{png_data_url(wide, WIDE_DPI)}" alt="{html.escape(alt)}" style="max-width:100%;height:auto">'
        f"</picture>"
    )


def show(build_live: Callable[[], object], draw_static: Callable[..., object], *, caption: str = "") -> object:
    """Display an explorer: the live widget, or in static mode its figure and a caption; returns what is shown.

    In static mode ``draw_static()`` draws the figure for a wide page and ``draw_static(narrow=True)`` the one for
    a phone; both go into one ``<picture>`` (see the module docstring).
    """
    from IPython.display import HTML, Markdown, display

    live = build_live()  # always built: an explorer that cannot be built is an error everywhere
    if not static_mode():
        display(live)
        return live
    import matplotlib.pyplot as plt

    figure, narrow = draw_static(), draw_static(narrow=True)
    display(HTML(picture_html(figure, narrow, caption or "static view of an interactive explorer")))
    plt.close(figure)
    plt.close(narrow)
    note = "Static view of an interactive explorer: open this notebook in Colab or Jupyter to change the settings."
    display(Markdown(f"*{caption + ' ' if caption else ''}{note}*"))
    return figure
