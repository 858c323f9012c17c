"""Save and load built hierarchies as plain data: ``torch.load(path, weights_only=True)`` reads them.

:func:`save_hierarchy` writes a hierarchy's stored data (every level graph built first)
as nested lists and ``{"__tag__": ...}`` records of tensors, numbers and strings, so the
file holds no pickled class and loads with ``torch.load(weights_only=True)``::

    save_hierarchy(h, "part.hierarchy.pt")     # e.g. a spectral hierarchy, minutes to build
    h = load_hierarchy("part.hierarchy.pt")    # the same spaces, restrict / prolong and graphs

Numpy arrays, scipy sparse matrices, meshes (vertices and faces), level graphs, dtypes and
devices are stored as tagged records of tensors; geounet objects inside a hierarchy (a
mesh's transforms, a graph's geometry function) as the name of their geounet class or
function with their data. :func:`load_hierarchy` rebuilds only classes and functions of
geounet's own modules, and the top-level object only when it is a
:class:`~geounet.hierarchy.base.Hierarchy` of the stored ``kind``. Memoised derived tensors
(:meth:`Hierarchy.cached`) are not saved; they are rebuilt on first use.
"""

from __future__ import annotations

import functools
import importlib
import os
import types
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from geounet.errors import GeounetError, MissingFileError
from geounet.geometry.mesh import Mesh
from geounet.hierarchy.base import Hierarchy

FORMAT = "geounet-hierarchy"
VERSION = 1
#: attributes of a hierarchy that are derived caches, rebuilt on use
_NOT_SAVED = ("_memo",)
_SPARSE = ("csr_matrix", "csr_array", "csc_matrix", "csc_array", "coo_matrix", "coo_array")


def save_hierarchy(hierarchy: Hierarchy, path: str | os.PathLike) -> Path:
    """Write ``hierarchy`` (moved to the CPU, level graphs built) to ``path`` (see the module docstring)."""
    if not isinstance(hierarchy, Hierarchy):
        raise GeounetError(f"save_hierarchy saves a Hierarchy, got a {type(hierarchy).__name__}")
    cpu = hierarchy.to("cpu").materialize()
    payload = {"format": FORMAT, "version": VERSION, "kind": cpu.kind, "hierarchy": _encode(cpu, "hierarchy")}
    path = Path(path)
    torch.save(payload, path)
    return path


def load_hierarchy(path: str | os.PathLike, device: torch.device | str | None = None) -> Hierarchy:
    """The hierarchy saved at ``path`` (read with ``weights_only=True``), moved to ``device``."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"no hierarchy file at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise GeounetError(f"{path} is not a hierarchy file of save_hierarchy: {type(error).__name__}: "
                           f"{error}") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise GeounetError(f"{path} is not a hierarchy file of save_hierarchy (no '{FORMAT}' record)")
    if payload.get("version") != VERSION:
        raise GeounetError(f"{path} has hierarchy format version {payload.get('version')}; this geounet reads "
                           f"version {VERSION}: build the hierarchy again and save it")
    hierarchy = _decode(payload["hierarchy"])
    if not isinstance(hierarchy, Hierarchy) or hierarchy.kind != payload["kind"]:
        raise GeounetError(f"{path} does not hold a hierarchy of its stored kind {payload['kind']!r}")
    return hierarchy if device is None else hierarchy.to(device)


# ---------------------------------------------------------------------- encoding


def _encode(value: Any, where: str) -> Any:
    """``value`` as tensors, numbers, strings, lists and tagged dicts (see the module docstring)."""
    if value is None or isinstance(value, bool | int | float | str | torch.Tensor):
        return value
    if isinstance(value, list):
        return [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, dict):
        return {"__dict__": [[_encode(k, f"{where} key"), _encode(v, f"{where}[{k!r}]")] for k, v in value.items()]}
    if isinstance(value, np.ndarray | np.generic):
        array = np.asarray(value)
        if array.dtype == object:
            raise GeounetError(f"{where} is a numpy array of Python objects, which a hierarchy file cannot hold")
        return {"__ndarray__": torch.from_numpy(np.array(array, copy=True))}
    if sp.issparse(value):
        csr = value.tocsr()
        return {"__sparse__": [type(value).__name__, torch.from_numpy(csr.data.copy()),
                               torch.from_numpy(csr.indices.copy()), torch.from_numpy(csr.indptr.copy()),
                               list(csr.shape)]}
    if isinstance(value, torch.dtype):
        return {"__dtype__": str(value).removeprefix("torch.")}
    if isinstance(value, torch.device):
        return {"__device__": str(value)}
    if isinstance(value, Mesh):
        return {"__mesh__": [torch.from_numpy(value.vertices.copy()), torch.from_numpy(value.faces.copy())]}
    if isinstance(value, functools.partial):
        return {"__partial__": [_encode(value.func, where), _encode(value.args, where), _encode(value.keywords, where)]}
    if isinstance(value, types.FunctionType):
        return {"__function__": _geounet_name(value, where)}
    if hasattr(value, "__dict__") and not isinstance(value, type):
        state = {k: v for k, v in vars(value).items() if not (isinstance(value, Hierarchy) and k in _NOT_SAVED)}
        return {"__object__": [_geounet_name(type(value), where), _encode(state, f"{where}.{type(value).__name__}")]}
    raise GeounetError(f"{where} is a {type(value).__name__}, which a hierarchy file cannot hold")


def _geounet_name(obj: Any, where: str) -> str:
    """``"module:qualname"`` of a geounet class or function."""
    module, name = getattr(obj, "__module__", ""), getattr(obj, "__qualname__", "")
    if not module.startswith("geounet.") or "<" in name:
        raise GeounetError(f"{where} holds {module}.{name}, not a class or function of geounet's own modules; a "
                           "hierarchy file names only those")
    return f"{module}:{name}"


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    (tag, data), = value.items()
    if tag == "__tuple__":
        return tuple(_decode(v) for v in data)
    if tag == "__dict__":
        return {_decode(k): _decode(v) for k, v in data}
    if tag == "__ndarray__":
        array = data.numpy()
        return array[()] if array.ndim == 0 else array
    if tag == "__sparse__":
        kind, values, indices, indptr, shape = data
        if kind not in _SPARSE:
            raise GeounetError(f"a hierarchy file names the sparse type {kind!r}, not one of {_SPARSE}")
        return getattr(sp, kind)(sp.csr_matrix((values.numpy(), indices.numpy(), indptr.numpy()), shape=tuple(shape)))
    if tag == "__dtype__":
        return getattr(torch, data)
    if tag == "__device__":
        return torch.device(data)
    if tag == "__mesh__":
        return Mesh(data[0].numpy(), data[1].numpy())
    if tag == "__partial__":
        return functools.partial(_decode(data[0]), *_decode(data[1]), **_decode(data[2]))
    if tag == "__function__":
        return _resolve(data)
    if tag == "__object__":
        cls = _resolve(data[0])
        if not isinstance(cls, type):
            raise GeounetError(f"a hierarchy file names {data[0]} as a class; it is not one")
        obj = cls.__new__(cls)
        obj.__dict__.update(_decode(data[1]))
        return obj
    raise GeounetError(f"a hierarchy file holds an unknown record {tag!r}")


def _resolve(name: str) -> Any:
    """The geounet class or function ``"module:qualname"``."""
    module, _, qualname = name.partition(":")
    if not module.startswith("geounet."):
        raise GeounetError(f"a hierarchy file names {name}, outside geounet; it is not loaded")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj
