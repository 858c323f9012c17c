"""Every ```python block of README.md runs as written.

The blocks run in order in one namespace, as a reader pasting them into one session would,
in a folder holding the repository's ``meshes/`` and a small ``t2m.nc`` (the climate
example's input, made here: lat-lon 2 m temperature).
"""

import re
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"^```python\n(.*?)^```", (REPO / "README.md").read_text(), flags=re.S | re.M)


def _t2m(path: Path) -> None:
    import xarray as xr

    latitude = np.linspace(89.5, -89.5, 90)
    longitude = np.arange(0.0, 360.0, 2.0)
    field = 288 - 30 * np.sin(np.deg2rad(latitude))[:, None] ** 2 + np.cos(np.deg2rad(longitude))[None]
    xr.Dataset({"t2m": (("time", "latitude", "longitude"), np.stack([field, field + 1]))},
               coords={"time": [0, 1], "latitude": latitude, "longitude": longitude}).to_netcdf(path)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """``run(i)``: the namespace after blocks 0..i (earlier blocks run once, in order)."""
    import os

    folder = tmp_path_factory.mktemp("readme")
    (folder / "meshes").symlink_to(REPO / "meshes")
    _t2m(folder / "t2m.nc")
    namespace: dict = {"__name__": "readme"}
    done = []

    def run(index: int) -> dict:
        cwd = os.getcwd()
        os.chdir(folder)
        try:
            while len(done) <= index:
                block = len(done)
                done.append(block)
                exec(compile(BLOCKS[block], f"README.md python block {block + 1}", "exec"), namespace)
        finally:
            os.chdir(cwd)
        return namespace

    return run


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=[f"block{i + 1}" for i in range(len(BLOCKS))])
def test_readme_block_runs(index, session):
    session(index)
