"""Widgets for the lessons. The only part of the kit that imports ipywidgets; each panel renders data
that a pure function elsewhere in the kit computes.

`kit.ui.Studio()` is the whole board (kit.ui.studio); the panels are kit.ui.train, kit.ui.memory,
kit.ui.chat, kit.ui.data and kit.ui.templates."""


def __getattr__(name):  # kit.ui.Studio without importing every panel at `import kit.ui`
    if name == "Studio":
        import importlib

        return importlib.import_module("kit.ui.studio").Studio
    raise AttributeError(f"module 'kit.ui' has no attribute {name!r}")
