"""What every panel shares: a control with its help line under it, choice values that show "none",
and the language switch. ipywidgets 8 does not show `description_tooltip` on labelled dropdowns,
text boxes or checkboxes, so help is a visible line (class `kit-help`) in the chosen language.
Not here: any panel's own controls.
"""
from __future__ import annotations

import functools
import html
import json
from pathlib import Path

import ipywidgets as widgets

LANGS = {"English": 0, "中文": 1}
NONE = "none"  # how an optional choice shows None in a dropdown (a None value would show a blank)


@functools.lru_cache(maxsize=None)
def _all_text() -> dict:
    return json.loads((Path(__file__).with_name("text.json")).read_text(encoding="utf-8"))


def panel_text(panel: str) -> dict[str, tuple[str, str]]:
    """A panel's own strings, {key: (English, Chinese)}, from kit/ui/text.json: one file for the
    translator, beside the settings' labels and help that live on the dataclass fields."""
    return {key: tuple(pair) for key, pair in _all_text()[panel].items()}


HELP_STYLE = "color:#555;font-size:11px;line-height:1.3;margin:0 0 4px 0"


def help_html(text: str) -> str:
    return f"<div class='kit-help' style='{HELP_STYLE}'>{html.escape(text)}</div>"


def with_help(control: widgets.Widget, text: str, width: str = "100%") -> widgets.VBox:
    """The control with its help text as a visible line under it (and as the tooltip)."""
    control.description_tooltip = text
    line = widgets.HTML(help_html(text), layout=widgets.Layout(width=width))
    box = widgets.VBox([control, line], layout=widgets.Layout(width=width, margin="0 0 2px 0"))
    box.add_class("kit-setting")
    return box


def set_help(box: widgets.VBox, text: str) -> None:
    """Change the help line (and tooltip) of a box made by `with_help`."""
    control, line = box.children
    control.description_tooltip = text
    line.value = help_html(text)


def choice_options(choices) -> list[tuple[str, object]]:
    """Dropdown options for a field's choices; None becomes the visible value "none"."""
    return [(NONE if c is None else str(c), NONE if c is None else c) for c in choices]


def from_choice(value):
    return None if value == NONE else value


def to_choice(value):
    return NONE if value is None else value


def message(kind: str, text: str) -> str:
    """A status line: kind "error" (red), "ok" or "info"."""
    colour = {"error": "#c00", "ok": "#080", "info": "#333"}[kind]
    return f"<span style='color:{colour}'>{html.escape(text)}</span>"
