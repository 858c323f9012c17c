"""Names that geounet's packages re-export, and cross-references to them by either path.

A package such as :mod:`geounet.hierarchy` lists in ``__all__`` names that its submodules
define (``from geounet.hierarchy.healpix import HealpixHaarHierarchy``). The API reference
documents each such name once, at the package path a user imports it from; docstrings refer to
it by either path. This extension reads the packages' ``__init__.py`` files (their syntax only)
and, when a Python cross-reference finds nothing, retries it

- at the package path of a re-exported name's defining path, and
- as Python itself reads the name in the docstring's module: ``:class:`GeounetError``` in a
  module that imports it, or ``:meth:`Hierarchy.cached```, is the object that name is bound to
  there, documented under its defining (or package) path, and
- as the one object of that name inside the docstring's package: the docstring of
  ``geounet.nn.KernelConv``, documented at the package path, names ``uses_table`` of the
  module that defines it, ``geounet.nn.message_passing.uses_table``. A name that two objects
  of the package share stays unresolved (and fails the build).

It also gives a re-exported constant (``geounet.diffusion.SAMPLERS``) the ``#:`` comment written
where it is defined (autodoc looks for it in the package, where there is none, and would show
the docstring of the value's type), and leaves private base classes (``_Mixin``) out of a
class's "Bases:" line: they are not part of the API and have no page. Methods that PyTorch
Geometric generates for a ``MessagePassing`` subclass (``propagate``, ``edge_updater``: on the
class's first instantiation, which the executed tutorials cause before autodoc reads the API, it
replaces them by functions of a generated module such as ``..._KernelConv_propagate``) are left
out too: they are PyG's, and their annotations name the generated module's types.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

from sphinx.pycode import ModuleAnalyzer

PACKAGE_ROOT = Path(__file__).resolve().parents[2] / "geounet"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _all_list(tree: ast.Module) -> list[str] | None:
    """The literal ``__all__ = [...]`` of a module, or None without one."""
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id == "__all__" for target in statement.targets):
            return [ast.literal_eval(element) for element in statement.value.elts]
    return None


def all_lists() -> dict[str, list[str]]:
    """``{module: __all__}`` for every geounet module that has an ``__all__``."""
    lists = {}
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        names = _all_list(ast.parse(path.read_text(encoding="utf-8")))
        if names is not None:
            lists[_module_name(path)] = names
    return lists


def package_exports() -> dict[str, dict[str, str]]:
    """``{package: {name: defining module}}`` for the names in each package's ``__all__``
    (a name the package defines itself maps to the package)."""
    exports = {}
    for path in sorted(PACKAGE_ROOT.rglob("__init__.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = _all_list(tree)
        if names is None:
            continue
        package = _module_name(path)
        origin = {alias.asname or alias.name: statement.module
                  for statement in tree.body if isinstance(statement, ast.ImportFrom)
                  for alias in statement.names}
        exports[package] = {name: origin.get(name, package) for name in names}
    return exports


def public_paths() -> dict[str, str]:
    """``{defining path: package path}`` of every re-exported name."""
    return {f"{module}.{name}": f"{package}.{name}"
            for package, names in package_exports().items()
            for name, module in names.items() if module != package}


def to_public(target: str, paths: dict[str, str]) -> str:
    """``target`` with a re-exported name's defining path replaced by its package path
    (``geounet.hierarchy.healpix.HealpixHaarHierarchy.restrict`` ->
    ``geounet.hierarchy.HealpixHaarHierarchy.restrict``); unchanged otherwise."""
    parts = target.split(".")
    for cut in range(len(parts), 0, -1):
        public = paths.get(".".join(parts[:cut]))
        if public is not None:
            return ".".join([public, *parts[cut:]])
    return target


def _lookup(module_name: str, name: str):
    """What ``name`` (possibly dotted) is bound to in module ``module_name`` (None if nothing)."""
    try:
        target = importlib.import_module(module_name)
    except ImportError:
        return None
    for part in name.split("."):
        target = getattr(target, part, None)
    return target


def defining_module(path: str) -> str | None:
    """The module that defines the geounet object at ``path`` (``package.Name`` or deeper)."""
    module, _, name = path.partition(".")
    while name:
        found = _lookup(module, name)
        if found is not None:
            defined_in = getattr(found, "__module__", None)
            return defined_in if isinstance(defined_in, str) else None
        head, _, name = name.partition(".")
        module = f"{module}.{head}"
    return None


def bound_path(module_name: str, name: str) -> str | None:
    """The defining path (``module.qualname``) of what ``name`` (possibly dotted) is bound to in
    geounet module ``module_name``, or None when it names nothing there or no geounet object."""
    target = _lookup(module_name, name)
    defined_in, qualname = getattr(target, "__module__", None), getattr(target, "__qualname__", None)
    if not (isinstance(defined_in, str) and isinstance(qualname, str)):
        return None
    return f"{defined_in}.{qualname}" if defined_in.split(".")[0] == "geounet" else None


def _scopes(node) -> list[str]:
    """The geounet modules in which a reference's docstring reads names: the current module,
    and the modules defining the current class and the page's object (autosummary names each
    object's page after its path), which differ for names documented at a package path."""
    module, cls = node.get("py:module"), node.get("py:class")
    scopes = [module] if module else []
    for path in (f"{module}.{cls}" if module and cls else None, node["refdoc"].rpartition("/")[2]):
        defined_in = defining_module(path) if path and path.startswith("geounet.") else None
        scopes += [defined_in] if defined_in else []
    return [scope for scope in dict.fromkeys(scopes) if scope.split(".")[0] == "geounet"]


def _resolve_at_package_path(app, env, node, contnode):
    """``missing-reference`` handler: retry a Python reference at the package path, as the
    object the name is bound to in the docstring's modules, and as the package's only object
    of that name."""
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip("~.")
    module, cls = node.get("py:module"), node.get("py:class")
    candidates = [target] + [f"{scope}.{target}" for scope in (
        f"{module}.{cls}" if module and cls else None, module) if scope]
    candidates += [bound for bound in (bound_path(scope, target) for scope in _scopes(node)) if bound]
    domain = env.get_domain("py")
    for candidate in dict.fromkeys(candidates):
        public = to_public(candidate, app.env.geounet_public_paths)
        if public == target:
            continue
        retry = node.deepcopy()
        retry["reftarget"] = public
        reference = domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], public, retry, contnode)
        if reference is not None:
            return reference
    return _resolve_in_package(app, env, node, contnode, target, module)


def _resolve_in_package(app, env, node, contnode, target, module):
    """Resolve ``target`` as the only documented object of the package of ``module`` whose
    path ends with it (None when there is no such object or several)."""
    if not module or module.split(".")[0] != "geounet":
        return None
    package = ".".join(module.split(".")[:2])
    domain = env.get_domain("py")
    # one object may be listed under two names (autodoc adds a re-exported class's defining path)
    matches = {(docname, anchor): name for name, _, _, docname, anchor, _ in domain.get_objects()
               if name.startswith(f"{package}.") and name.endswith(f".{target}")}
    if len(matches) != 1:
        return None
    (match,) = matches.values()
    retry = node.deepcopy()
    retry["reftarget"] = match
    return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], match, retry, contnode)


def _remember_paths(app, env, docnames):
    env.geounet_public_paths = public_paths()


def _comment_of_reexported_data(app, what, name, obj, options, lines):
    """Replace a re-exported constant's docstring by its ``#:`` comment where it is defined."""
    defined_at = next((path for path, public in app.env.geounet_public_paths.items() if public == name), None)
    if what != "data" or defined_at is None:
        return
    module, _, attribute = defined_at.rpartition(".")
    comment = ModuleAnalyzer.for_module(module).find_attr_docs().get(("", attribute), [])
    lines[:] = list(comment)


def _drop_private_bases(app, name, obj, options, bases):
    bases[:] = [base for base in bases if not getattr(base, "__name__", "").startswith("_")]


def _skip_generated_methods(app, what, name, obj, skip, options):
    module = getattr(obj, "__module__", None) or ""
    return True if module.endswith(("_propagate", "_edge_updater")) else None


def setup(app):
    app.connect("env-before-read-docs", _remember_paths)
    app.connect("autodoc-skip-member", _skip_generated_methods)
    app.connect("missing-reference", _resolve_at_package_path)
    app.connect("autodoc-process-bases", _drop_private_bases)
    app.connect("autodoc-process-docstring", _comment_of_reexported_data, priority=400)  # before napoleon
    return {"parallel_read_safe": True, "parallel_write_safe": True}
