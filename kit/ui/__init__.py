"""Widgets for the lessons. The only part of the kit that imports ipywidgets; each panel renders data
that a pure function elsewhere in the kit computes."""
