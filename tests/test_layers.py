"""The package's layers: each imports only from itself and the layers below it.

Reading from the bottom up: plain geometry, pure tensor functions, hierarchies built from
geometry, modules that hold only parameters, ready-made models, user data, data sets and
their caches, the generators that fill those caches, figures, the diffusion library, the training loop, learning tasks,
experiment runners, inference on trained runs, analyses, the command line. A module may
import a lower layer at any point (also inside a function); an import of a higher layer
makes the lower one depend on everything above it, and fails this test.
"""

import ast
from pathlib import Path

import geounet

PACKAGE = Path(geounet.__file__).parent
LAYERS = [
    "errors", "configs", "geometry", "functional", "hierarchy", "nn", "models", "data", "datagen", "plot",
    "diffusion", "train", "tasks", "experiment", "inference", "analysis", "testing", "cli",
]


def _layer(module: str) -> str | None:
    """The layer of ``geounet.<layer>...``; ``None`` for the package root or another package."""
    parts = module.split(".")
    return parts[1] if parts[0] == "geounet" and len(parts) > 1 else None


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every absolute import of geounet in ``path``, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names if node.module == "geounet"]
            found += [(node.lineno, name) for name in names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, name) for line, name in found if name.startswith("geounet.")]


def test_every_module_belongs_to_a_layer():
    tops = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in PACKAGE.glob("*") if p.name != "__pycache__"}
    assert tops - {"__init__"} <= set(LAYERS), f"add {sorted(tops - set(LAYERS) - {'__init__'})} to LAYERS"


def test_no_module_imports_a_higher_layer():
    rank = {name: i for i, name in enumerate(LAYERS)}
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        own = _layer(".".join(("geounet", *parts[: -1 if parts[-1] == "__init__" else None])))  # root: None
        if own is None:
            continue
        for line, module in _imports(path):
            target = _layer(module)
            if target in rank and rank[target] > rank[own]:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({own}) imports {module} ({target})")
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(upward)
