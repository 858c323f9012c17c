"""Vertical bars in docstrings are mathematics, not reStructuredText substitutions.

geounet's docstrings write norms and absolute values as plain text (``|c_k|²``, ``|Ω|``,
``mean_b |log(Ē_b / Ē_b^ref)|``) so that they read well in ``help()``. reStructuredText takes
``|name|`` for a substitution reference and fails on it. geounet defines no substitutions, so
this extension escapes every ``|`` of a docstring before it is parsed, except inside inline
literals, roles (``:math:`...```) and literal blocks (the indented lines after ``::``, which
include ``.. math::``), where reStructuredText does not look for substitutions.
"""

from __future__ import annotations

import re

#: inline spans that reStructuredText shows as written: ``literal``, :role:`text`, `text`
VERBATIM_SPAN = re.compile(r"(``.+?``|:[\w:.-]+:`[^`]*`|`[^`]*`_{0,2})")


def escape_bars(lines: list[str]) -> None:
    """Escape ``|`` in place in the prose lines of one docstring."""
    literal_indent = None  # indentation of the line that opened the current literal block
    for number, line in enumerate(lines):
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if literal_indent is not None:
            if not stripped or indent > literal_indent:
                continue
            literal_indent = None
        parts = VERBATIM_SPAN.split(line)
        parts[::2] = [part.replace("|", r"\|") for part in parts[::2]]
        lines[number] = "".join(parts)
        if line.rstrip().endswith("::"):
            literal_indent = indent


def _escape_docstring(app, what, name, obj, options, lines):
    escape_bars(lines)


def setup(app):
    app.connect("autodoc-process-docstring", _escape_docstring, priority=600)  # after napoleon (500)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
