"""Moving objects that hold tensors: the machinery behind ``Hierarchy.to`` and ``HealpixSHT.to``.

An object is *tensor data* when it defines ``_map_tensors(fn)``: a copy of itself with
``fn`` applied to every tensor it stores, sharing nothing mutable with the original (so
using the copy, and the caches it fills, never changes the original). :func:`map_tensors`
walks containers and such objects; :func:`mover` is the ``fn`` of ``.to(device, dtype)``.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import Tensor

T = TypeVar("T")


def map_tensors(value: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    """``value`` with ``fn`` applied to every tensor inside it: through lists, tuples, dicts,
    dataclasses and tensor data (objects with ``_map_tensors``, which move only what they
    store); anything else (numbers, strings, numpy arrays) is kept as is."""
    if isinstance(value, Tensor):
        return fn(value)
    if hasattr(value, "_map_tensors") and not isinstance(value, type):
        return value._map_tensors(fn)
    if isinstance(value, list | tuple):
        return type(value)(map_tensors(v, fn) for v in value)
    if isinstance(value, dict):
        return {key: map_tensors(v, fn) for key, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: map_tensors(getattr(value, f.name), fn) for f in dataclasses.fields(value) if f.init}
        return dataclasses.replace(value, **changes)
    return value


def mover(device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Callable[[Tensor], Tensor]:
    """``tensor -> tensor.to(device)``, casting floating tensors to ``dtype`` and complex tensors
    to the complex dtype of the same precision (float32 -> complex64); integer and bool tensors
    keep their dtype. The returned function carries ``device`` and ``dtype`` as attributes,
    which :func:`copy_moved` records on the copies it makes."""

    def move(tensor: Tensor) -> Tensor:
        target = tensor.dtype
        if dtype is not None and tensor.is_floating_point():
            target = dtype
        elif dtype is not None and tensor.is_complex():
            target = torch.promote_types(dtype, torch.complex64)
        return tensor.to(device=device if device is not None else tensor.device, dtype=target)

    move.device = None if device is None else torch.device(device)
    move.dtype = dtype
    return move


def copy_moved(value: T, fn: Callable[[Tensor], Tensor], skip: tuple[str, ...] = ()) -> T:
    """A shallow copy of ``value`` whose attributes (except ``skip``) are ``map_tensors(attribute,
    fn)``, with the ``device`` / ``dtype`` of a :func:`mover` recorded as its own."""
    copied = copy.copy(value)
    copied.__dict__ = {key: map_tensors(item, fn) for key, item in value.__dict__.items() if key not in skip}
    if getattr(fn, "device", None) is not None:
        copied.device = fn.device
    if getattr(fn, "dtype", None) is not None:
        copied.dtype = fn.dtype
    return copied
