"""Sphinx configuration of geounet's documentation site.

Built by ``make docs`` (warnings are errors, nitpicky cross-references), then checked by
``docs/check_site.py``: internal links, the ``__all__`` names against the inventory, and the
rendered math and figures in headless Chromium. Set ``GEOUNET_DOCS_TUTORIALS=0`` (``make docs``
passes it on as sphinx-gallery's ``plot_gallery``) to build without executing the tutorials.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))

# PyTorch Geometric calls the deprecated torch.jit.script when imported (as the CLI says too).
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)

from public_names import package_exports  # noqa: E402

import geounet  # noqa: E402

project = "geounet"
author = "geounet contributors"
copyright = "2026, geounet contributors"  # noqa: A001 (Sphinx's own setting name)
release = geounet.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "prose_attributes",  # docs/_ext: napoleon, except on attribute docstrings (prose there)
    "plain_bars",  # docs/_ext: `|x|` in docstrings is an absolute value, not a substitution
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax 3 copied into _static/mathjax: no CDN at read time
    "myst_parser",
    "sphinx_gallery.gen_gallery",
    "cli_reference",  # docs/_ext: the CLI reference from geounet's argparse parsers
    "public_names",  # docs/_ext: package paths of re-exported names, for cross-references
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "tutorials"]  # tutorials/: sphinx-gallery reads them and writes auto_tutorials/
templates_path = ["_templates"]

# --- cross-references: every geounet name must resolve ------------------------------------
nitpicky = True
# Third-party and standard-library types appear in signatures; their documentation is not
# reachable offline (no intersphinx inventories on the build machines), so references into
# these packages cannot resolve. Each prefix is a package outside geounet, never geounet itself.
_UNRESOLVABLE_PACKAGES = [
    "torch", "torch_geometric", "torch_harmonics", "e3nn", "physicsnemo",  # the deep-learning stack
    "numpy", "scipy", "xarray", "healpy", "trimesh", "meshio", "matplotlib", "onnx", "onnxruntime",
    "pandas", "skfem", "networkx", "dask", "zarr", "netCDF4",  # the scientific stack
    "abc", "pathlib", "collections", "typing", "os", "io", "argparse", "dataclasses", "enum", "types",
    "concurrent", "contextlib", "threading", "multiprocessing", "datetime", "random", "logging",
]
_BUILTIN_TYPES = [
    "Path", "Tensor", "ndarray", "Module", "Callable", "Iterable", "Iterator", "Sequence", "Mapping",
    "Any", "Generator", "Literal", "TypeVar", "Self", "PathLike", "Namespace", "ArgumentParser",
]
nitpick_ignore_regex = [
    (r"py:.*", rf"({'|'.join(_UNRESOLVABLE_PACKAGES)})(\..*)?"),
]
# Type variables of generic helpers appear in their signatures; they are not API objects.
_TYPE_VARIABLES = [f"geounet.{module}.T" for module in (
    "hierarchy.base", "hierarchy.finest", "functional.tensor_data", "geometry.cache_files")]
# Private classes that appear in public signatures (a family argument typed by its private base) have no page.
_PRIVATE_IN_SIGNATURES = ["geounet.datagen.mesh_families._MeshFamily"]
# Sphinx 9.0.4 splits the string annotation of TrainResult.history (a dataclass field under ``from __future__ import
# annotations``) at its comma in the class signature and looks up this fragment of a builtin type.
_SPHINX_ANNOTATION_FRAGMENTS = ["'list[dict[str"]
nitpick_ignore = [("py:class", name) for name in
                  _BUILTIN_TYPES + _TYPE_VARIABLES + _PRIVATE_IN_SIGNATURES + _SPHINX_ANNOTATION_FRAGMENTS]

# --- API reference ---------------------------------------------------------------------------
autosummary_generate = True
autosummary_ignore_module_all = True  # list every submodule; the templates and autodoc apply __all__
autosummary_imported_members = False
# `python -m geounet.cli` runs the command on import; autosummary imports every submodule it lists
autosummary_mock_imports = ["geounet.cli.__main__"]
autosummary_context = {"package_exports": package_exports()}
autodoc_default_options = {"member-order": "bysource", "undoc-members": True}  # every public name
autodoc_inherit_docstrings = False  # third-party docstrings (torch.autograd.Function.forward) are not ours to check
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autoclass_content = "both"
napoleon_google_docstring = True
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True  # "Attributes:" as a field list: the attributes themselves are documented as members

# --- prose pages --------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# --- tutorials -------------------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "tutorials",
    "gallery_dirs": "auto_tutorials",
    "filename_pattern": r"/plot_",  # every plot_*.py runs at build time
    "plot_gallery": os.environ.get("GEOUNET_DOCS_TUTORIALS", "1") != "0",
    "only_warn_on_example_error": False,  # a tutorial that raises fails the build
    "abort_on_example_error": False,  # ... after all tutorials ran, with every failure listed
    "download_all_examples": False,
    "image_scrapers": ("matplotlib",),
    "matplotlib_animations": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "show_memory": False,
    "write_computation_times": False,  # no timing page: its numbers differ per build
}

# --- HTML ------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"geounet {release}"
html_static_path = []
html_show_sourcelink = False
html_copy_source = False
