"""Every run-time dependency declared in pyproject.toml is imported by geounet.

A package that nothing imports costs every user an install and hides what the code really
needs. (The climate extra's netCDF / zarr / dask packages are xarray's I/O back ends,
loaded by xarray itself, so they are not checked here; the dev extra holds the tests'
independent references and tools.)
"""

import ast
import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: distribution name -> the module it provides, where the two differ
MODULE_OF = {"torch-geometric": "torch_geometric", "robust-laplacian": "robust_laplacian",
             "torch-harmonics": "torch_harmonics", "nvidia-physicsnemo": "physicsnemo"}
XARRAY_BACKENDS = {"netCDF4", "h5netcdf", "dask", "zarr"}


def _imported_modules() -> set[str]:
    modules = set()
    for path in (REPO / "geounet").rglob("*.py"):
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
    declared += [req for name, reqs in extras.items() if name not in ("dev", "all") for req in reqs]
    names = {re.split(r"[<>=\[ ;]", req, maxsplit=1)[0] for req in declared} - XARRAY_BACKENDS
    unused = sorted(name for name in names if MODULE_OF.get(name, name) not in _imported_modules())
    assert not unused, f"declared but never imported by geounet: {unused}"
