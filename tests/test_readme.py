"""Every ```python block of README.md runs as written.

The blocks run in order in one namespace, as a reader pasting them into one session would,
in a folder holding nothing but the repository's ``meshes/`` (the README's paths are relative to
the repository root): every other input a block reads, a block before it writes.
"""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"^```python\n(.*?)^```", (REPO / "README.md").read_text(), flags=re.S | re.M)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """``run(i)``: the namespace after blocks 0..i (earlier blocks run once, in order)."""
    import os

    folder = tmp_path_factory.mktemp("readme")
    (folder / "meshes").symlink_to(REPO / "meshes")
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
