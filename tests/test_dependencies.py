"""Every run-time dependency declared in pyproject.toml is imported by geounet.

A package that nothing imports costs every user an install and hides what the code really
needs. (The climate extra's netCDF / zarr / dask packages are xarray's I/O back ends,
loaded by xarray itself, so they are not checked here; the dev extra holds the tests'
independent references and tools.) The docs extra is checked against the documentation build:
each package is imported by docs/ or named in docs/conf.py's ``extensions`` or ``html_theme``.
"""

import ast
import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: distribution name -> the module it provides, where the two differ
MODULE_OF = {"torch-geometric": "torch_geometric", "robust-laplacian": "robust_laplacian",
             "torch-harmonics": "torch_harmonics", "nvidia-physicsnemo": "physicsnemo",
             "beautifulsoup4": "bs4", "myst-parser": "myst_parser", "sphinx-gallery": "sphinx_gallery"}
XARRAY_BACKENDS = {"netCDF4", "h5netcdf", "dask", "zarr"}


def _requirement_name(requirement: str) -> str:
    return re.split(r"[<>=\[ ;]", requirement, maxsplit=1)[0]


def _imported_modules(folder: str = "geounet") -> set[str]:
    modules = set()
    for path in (REPO / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules


def test_every_declared_run_time_dependency_is_imported():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    declared = list(project["dependencies"])
    declared += [req for name, reqs in extras.items() if name not in ("dev", "all", "docs") for req in reqs]
    names = {_requirement_name(req) for req in declared} - XARRAY_BACKENDS
    unused = sorted(name for name in names if MODULE_OF.get(name, name) not in _imported_modules())
    assert not unused, f"declared but never imported by geounet: {unused}"


def test_every_docs_dependency_is_used_by_the_documentation_build():
    docs_extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["docs"]
    conf = ast.parse((REPO / "docs" / "conf.py").read_text())
    settings = [node.value for node in conf.body if isinstance(node, ast.Assign)
                and any(isinstance(target, ast.Name) and target.id in ("extensions", "html_theme")
                        for target in node.targets)]
    named_in_conf = {node.value.split(".")[0] for setting in settings for node in ast.walk(setting)  # "a.b" -> "a"
                     if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    used = _imported_modules("docs") | named_in_conf
    unused = sorted(name for name in map(_requirement_name, docs_extra)
                    if MODULE_OF.get(name, name) not in used and name not in used)
    assert not unused, f"in the docs extra but neither imported by docs/ nor named in docs/conf.py: {unused}"
