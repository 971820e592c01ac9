"""Figures that show themselves in a notebook.

The kit draws with matplotlib's object API (no pyplot global state). A plain `Figure` returned at
the end of a cell shows only as text unless the notebook ran `%matplotlib inline`; this subclass
adds a PNG representation, so every kit plot (and a lesson's own `kit.plots.Figure()`) renders in
JupyterLab, Colab, nbconvert HTML and the course runner alike.
Not here: any particular plot (they live with the data they plot).
"""
from __future__ import annotations

import io

from matplotlib.figure import Figure as _MplFigure


class Figure(_MplFigure):
    """A matplotlib Figure with `_repr_png_`, for display in notebooks."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()
