"""Napoleon for functions and classes, not for attributes.

Napoleon reads an attribute's docstring ``"text: more"`` as ``"type: description"`` (its inline
attribute convention). geounet's attribute, data and property docstrings (``#:`` comments
included) are prose whose types come from annotations, e.g. ``#: clusters only: matching
passes per level``, so this extension runs napoleon on every other docstring and leaves
attribute-like ones as written.
"""

from __future__ import annotations

from sphinx.ext import napoleon

PROSE_KINDS = frozenset({"attribute", "data", "property"})


def _napoleon_except_attributes(app, what, name, obj, options, lines):
    if what not in PROSE_KINDS:
        napoleon._process_docstring(app, what, name, obj, options, lines)


def setup(app):
    app.setup_extension("sphinx.ext.napoleon")
    for listener in list(app.events.listeners["autodoc-process-docstring"]):
        if listener.handler is napoleon._process_docstring:
            app.disconnect(listener.id)
    app.connect("autodoc-process-docstring", _napoleon_except_attributes)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
