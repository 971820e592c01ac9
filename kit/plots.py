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


_CJK_NAMES = ("wqy", "notosanscjk", "notoserifcjk", "sourcehansans", "simhei", "msyh", "pingfang", "droidsansfallback")


def cjk_font() -> str | None:
    """The family name of an installed font with Chinese glyphs, added after matplotlib's font.family
    so Chinese labels draw (English text keeps its font); None when the machine has none (labels then stay English:
    matplotlib would draw empty boxes and warn for every glyph)."""
    global _CJK
    if _CJK is not _UNSET:
        return _CJK
    from matplotlib import font_manager, rcParams

    _CJK = None
    for path in font_manager.findSystemFonts():
        if any(key in path.lower().replace("-", "").replace("_", "") for key in _CJK_NAMES):
            try:
                font_manager.fontManager.addfont(path)
                _CJK = font_manager.FontProperties(fname=path).get_name()
            except (OSError, RuntimeError, ValueError):
                continue
            families = list(rcParams["font.family"])
            if _CJK not in families:  # matplotlib falls back along font.family glyph by glyph
                rcParams["font.family"] = [*families, _CJK]
            break
    return _CJK


def label(english: str, chinese: str, lang: int = 0) -> str:
    """A plot label in the chosen language (0 English, 1 Chinese where a Chinese font is installed)."""
    return chinese if lang and cjk_font() else english


_UNSET = object()
_CJK = _UNSET
