"""Every name of every ``__all__`` in geounet is in the API reference, with its docstring.

The names come from the source (the literal ``__all__`` lists, as ``docs/_ext/public_names``
reads them); what the site documents comes from the built inventory (``objects.inv``). A name
is documented at the path it is exported from (``geounet.hierarchy.HealpixHaarHierarchy``);
its entry must be in the inventory, and the page the inventory points to must show a
non-empty description for it (a class's "Bases:" line and its members' entries do not count).
"""

from __future__ import annotations

import sys
from pathlib import Path

import sphobjinv
from bs4 import BeautifulSoup

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "_ext"))
from public_names import all_lists  # noqa: E402


def documented_objects(site: Path) -> dict[str, str]:
    """``{name: page#anchor}`` of every Python object in the site's inventory."""
    inventory = sphobjinv.Inventory(site / "objects.inv")
    return {item.name: item.uri_expanded for item in inventory.objects if item.domain == "py"}


def _description(site: Path, uri: str, pages: dict[str, BeautifulSoup]) -> str:
    """The text an object's entry shows under its signature, without nested entries."""
    page, _, anchor = uri.partition("#")
    if page not in pages:
        pages[page] = BeautifulSoup((site / page).read_text(encoding="utf-8"), "html.parser")
    signature = pages[page].find(id=anchor)
    if signature is None:
        return ""
    body = signature.find_next_sibling("dd")
    if body is None:
        return ""
    paragraphs = [child for child in body.find_all(recursive=False) if child.name != "dl"]
    texts = [child.get_text(" ", strip=True) for child in paragraphs]
    return " ".join(text for text in texts if not text.startswith("Bases:"))


def missing_names(site: Path, lists: dict[str, list[str]] | None = None) -> list[str]:
    """One line per ``__all__`` name missing from the reference or shown without a docstring."""
    objects = documented_objects(site)
    pages: dict[str, BeautifulSoup] = {}
    problems = []
    for module, names in (all_lists() if lists is None else lists).items():
        for name in names:
            path = f"{module}.{name}"
            if path not in objects:
                problems.append(f"{path} (in {module}.__all__) is not in the API reference")
            elif not _description(site, objects[path], pages):
                problems.append(f"{path} (in {module}.__all__) has no docstring in the API reference")
    return problems
