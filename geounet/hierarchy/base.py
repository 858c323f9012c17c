"""The Hierarchy interface: nested spaces V_0 ⊂ V_1 ⊂ ... ⊂ V_I with projections.

A hierarchy is the geometric half of a U-Net in the sense of Williams, Falck et al.
(NeurIPS 2023). Level ``i`` (0 = coarsest, I = finest) holds functions represented by
their values on ``num_nodes(i)`` nodes; ``mass(i)`` holds the quadrature weights that
define the inner product

    <x, y>_i = sum_n mass_i[n] * x[n] * y[n].

``restrict`` is the paper's projection P: V_{i} -> V_{i-1} (fine to coarse) and
``prolong`` the inclusion V_{i} ⊂ V_{i+1} (coarse to fine). In every method the
``level`` argument is the level the *input* lives on.

Features are laid out ``[..., num_nodes, channels]`` (node dimension -2), one graph
per level shared by the whole batch.

A hierarchy is *data*, in the sense of PyTorch Geometric's ``Data``: every operator it
needs (masses, graphs, restrict / prolong weights) is a tensor attribute, built in
float64. :meth:`Hierarchy.to` returns a copy with every tensor moved (and floating
tensors cast); hierarchies pickle; a list of hierarchies collates into a disjoint union
(:func:`geounet.hierarchy.batching.batch_hierarchies`). Models hold no geometry: they are
called ``model(x, hierarchy)``. Derived per-level tensors that a model needs (scaled
edge features, neighbour tables) are memoised on the hierarchy with :meth:`Hierarchy.cached`,
so they move, pickle and collate with it.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import Tensor

from geounet.errors import GeounetError
from geounet.functional.tensor_data import copy_moved, map_tensors, mover


def validate_dyadic_levels(num_levels: int, finest_size: int, what: str, coarsest: str) -> int:
    """Check ``num_levels`` for a hierarchy that halves a power-of-two ``finest_size`` per level.

    ``what`` names the finest grid and ``coarsest`` the size-1 grid in the error message,
    e.g. ("a 16x16 grid", "a 1x1 grid") or ("nside 16", "nside 1").
    """
    max_levels = finest_size.bit_length()
    if isinstance(num_levels, bool) or not isinstance(num_levels, int) or not 1 <= num_levels <= max_levels:
        raise GeounetError(
            f"{what} allows 1 to {max_levels} levels (down to "
            f"{coarsest}), got num_levels={num_levels!r}"
        )
    return num_levels


T = TypeVar("T")

#: (coarse view, fine view) of the node axis in which prolong is a broadcast, e.g. ``((M, 1), (M, 4))``
ProlongLayout = tuple[tuple[int, ...], tuple[int, ...]]


class _Derivable:
    """A :class:`LevelGraph` field that, when not given, is derived on every access and never
    stored: the edge lists from the neighbour table, the geometry by the graph's ``derive``."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name, self.slot = name, "_stored_" + name

    def __get__(self, graph: LevelGraph | None, owner: type | None = None) -> Tensor | None:
        if graph is None:
            return None  # the dataclass default
        stored = graph.__dict__.get(self.slot)
        return stored if stored is not None else graph._derive(self.name)

    def __set__(self, graph: LevelGraph, value: Tensor | None) -> None:
        graph.__dict__[self.slot] = value


@dataclass(frozen=True, eq=False, repr=False)
class LevelGraph:
    """The graph of one level, for message passing.

    Messages flow along ``edge_index[0] -> edge_index[1]`` (source -> target), as in
    PyTorch Geometric. ``neighbours`` is the optional fixed-degree table used by the
    gather + matmul fast path; rows of nodes with fewer than ``K`` neighbours are padded
    and flagged False in ``neighbour_mask``.

    A graph is stored once: as edge lists, as a neighbour table, or both where a builder
    has both anyway. Given a table only (``edge_index=None``), ``edge_index`` /
    ``edge_attr`` are derived from it on each access (target-major, slot order), for the
    code paths that want edge lists; ``positions`` / ``neighbour_attr`` left None are
    computed on each access by ``derive(graph, name)`` when one is given (e.g. HEALPix
    geometry, cheaper to recompute than to keep). Derived tensors are never stored, and
    :func:`map_tensors` (``Hierarchy.to``) moves only the stored ones.
    """

    edge_index: Tensor | None = _Derivable()  # [2, E] int64
    edge_attr: Tensor | None = _Derivable()  # [E, F] float64, geometric edge features
    positions: Tensor | None = _Derivable()  # [N, D] float64
    neighbours: Tensor | None = None  # [N, K] int64 or int32
    neighbour_mask: Tensor | None = None  # [N, K] bool
    neighbour_attr: Tensor | None = _Derivable()  # [N, K, F] float64 or float32
    derive: Callable[[LevelGraph, str], Tensor | None] | None = None

    def __post_init__(self) -> None:
        if self.stored("edge_index") is None and self.neighbours is None:
            raise GeounetError("a LevelGraph needs edge_index / edge_attr or a neighbour table (neighbours, "
                             "neighbour_mask), got neither")
        if self.neighbours is not None and self.neighbour_mask is None:
            raise GeounetError("a LevelGraph with a neighbour table also needs its neighbour_mask")

    def stored(self, name: str) -> Tensor | None:
        """The field ``name`` as stored (None where it is derived on access)."""
        slot = "_stored_" + name
        return self.__dict__[slot] if slot in self.__dict__ else getattr(self, name)

    def _derive(self, name: str) -> Tensor | None:
        if name in ("edge_index", "edge_attr") and self.neighbours is not None:
            mask = self.neighbour_mask
            if name == "edge_attr":
                return self.neighbour_attr[mask]  # [E, F]
            target = torch.arange(mask.shape[0], device=mask.device).repeat_interleave(mask.sum(1))
            return torch.stack([self.neighbours[mask].to(torch.int64), target])  # [2, E], target-major
        return None if self.derive is None else self.derive(self, name)

    def _map_tensors(self, fn: Callable[[Tensor], Tensor]) -> LevelGraph:
        """A copy with ``fn`` applied to the stored tensors only (see :func:`map_tensors`)."""
        return dataclasses.replace(self, **{f.name: map_tensors(self.stored(f.name), fn)
                                            for f in dataclasses.fields(self)})

    @property
    def num_edges(self) -> int:
        stored = self.stored("edge_index")
        return int(stored.shape[1]) if stored is not None else int(self.neighbour_mask.sum())

    @property
    def num_edge_features(self) -> int:
        stored = self.stored("edge_attr")
        return int((stored if stored is not None else self.neighbour_attr).shape[-1])

    def __repr__(self) -> str:
        def describe(name: str) -> str:
            stored = self.stored(name)
            if stored is not None:
                return f"{name}={tuple(stored.shape)}"
            return f"{name}={'derived' if isinstance(vars(LevelGraph)[name], _Derivable) else None}"

        fields = ", ".join(describe(f.name) for f in dataclasses.fields(self) if f.name != "derive")
        return f"LevelGraph({fields})"


class Hierarchy(ABC):
    """Nested function spaces on a geometry, with restrict / prolong between levels.

    Subclasses declare which invariants their spaces satisfy through the class
    attributes below; ``geounet.testing.check_hierarchy`` checks all of them.

    Every concrete hierarchy declares its ``kind``, a class attribute naming its kind of
    spaces: a model is built for a kind, not a geometry, and its checkpoint records the kind.
    A subclass inherits its parent's kind (so it can reuse the parent's models and weights)
    unless it declares its own.

    Code outside ``geounet.hierarchy`` never tests a hierarchy's class; it asks for these
    capabilities, whose defaults here fit a hierarchy that has none of them:

    - :meth:`space_dimension` ``(level)``: dim V_level (the node count unless the level's
      functions are fewer than its nodes, as for band-limited spaces sampled on pixels);
    - :meth:`prolong_layout` ``(level)``: the views of the node axes in which prolong is a
      broadcast over children (None: not one), what the decoder fuses prolongation with;
    - :meth:`healpix_nside` ``(level)``: the nside when the level's nodes are the pixels of a
      HEALPix NEST grid (None: they are not), for spherical-harmonic analyses and pictures;
    - :meth:`healpix_face_nside` ``(level)``: the nside when the level's nodes are the pixels of a
      HEALPix grid in the flattened ``"face"`` image layout (None: they are not), for operators
      on face images;
    - :meth:`image_shape` ``(level)``: ``(rows, cols)`` when the nodes are the pixels of a
      row-major image (None: they are not);
    - :meth:`node_symmetries` ``()``: permutations of the finest level's nodes that are
      symmetries of the geometry (empty: none known), for equivariance checks.
    """

    #: prolong(1) == 1 and restrict(1) == 1 (False e.g. for zero-Dirichlet spaces).
    reproduces_constants: bool = True
    #: integral_i(restrict(x)) == integral_{i+1}(x) for every x.
    preserves_integrals: bool = True
    #: the domain wraps around (a periodic square): convolutions pad circularly
    periodic: bool = False
    #: a content hash set by cached builders (geounet.data.mesh_dataset): equal keys, equal geometry
    content_key: str | None = None
    #: where the hierarchy's tensors live and the dtype of its floating tensors (see :meth:`to`)
    device: torch.device = torch.device("cpu")
    dtype: torch.dtype = torch.float64

    @property
    @abstractmethod
    def kind(self) -> str:
        """The kind of spaces, e.g. ``"HealpixHaarHierarchy"``: models are built for a kind, not a
        geometry. Concrete hierarchies declare it as a class attribute (``kind = "..."``)."""

    @property
    @abstractmethod
    def num_levels(self) -> int:
        """Number of levels, I + 1."""

    @abstractmethod
    def num_nodes(self, level: int) -> int:
        """Number of nodes (degrees of freedom) at ``level``."""

    @abstractmethod
    def mass(self, level: int) -> Tensor:
        """Quadrature weights at ``level``, ``[num_nodes]`` float64, summing to the measure."""

    @abstractmethod
    def graph(self, level: int) -> LevelGraph:
        """The message-passing graph of ``level``."""

    @abstractmethod
    def _restrict(self, x: Tensor, level: int) -> Tensor:
        """P: V_level -> V_{level-1}; ``x`` is already validated."""

    @abstractmethod
    def _prolong(self, x: Tensor, level: int) -> Tensor:
        """Inclusion V_level -> V_{level+1}; ``x`` is already validated."""

    # ------------------------------------------------------------------ data

    def num_edge_features(self, level: int) -> int:
        """Width F of the edge features of ``level``'s graph (what sizes a model's kernels)."""
        return self.graph(level).num_edge_features

    def materialize(self) -> Hierarchy:
        """Build every lazily built level graph now, and whatever else a subclass (or a part of
        a union) builds lazily (``self``, for chaining)."""
        for part in self.parts():
            if part is not self:
                part.materialize()
        for level in range(self.num_levels):
            self.graph(level)
        return self

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Hierarchy:
        """A copy with every tensor on ``device`` and every floating tensor in ``dtype``
        (None: unchanged). Lazy data is built first (:meth:`materialize`), so the copy is
        complete; the copy shares nothing mutable with ``self``, so using it never changes
        ``self``. Memoised entries (:meth:`cached`) move with a device change and are dropped
        by a dtype change (their keys may name the old dtype); the copy rebuilds them. Like
        ``Tensor.to``, returns ``self`` when nothing would change."""
        if (device is None or torch.device(device) == self.device) and dtype in (None, self.dtype):
            return self
        self.materialize()
        return self._map_tensors(mover(device, dtype))

    def _map_tensors(self, fn: Callable[[Tensor], Tensor]) -> Hierarchy:
        """A copy with ``fn`` applied to every tensor, nested hierarchies included; a
        :func:`mover` also records its device and dtype on every copy, and one that changes
        the dtype leaves the memo behind."""
        new_dtype = getattr(fn, "dtype", None) not in (None, self.dtype)
        return copy_moved(self, fn, skip=("_memo",) if new_dtype else ())

    def cached(self, name: Any, level: int, build: Callable[[], T]) -> T:
        """``build()`` memoised under ``(name, level)`` in this hierarchy's data, so the result
        moves with :meth:`to` and pickles with the hierarchy. ``name`` must be hashable and
        say everything the result depends on besides the level (e.g. options, dtype)."""
        memo = self.__dict__.setdefault("_memo", {})
        key = (name, level)
        if key not in memo:
            memo[key] = build()
        return memo[key]

    def parts(self) -> list[Hierarchy]:
        """The independent geometries this hierarchy is the disjoint union of: ``[self]``
        for one geometry, one per mesh for a batch."""
        return [self]

    # ------------------------------------------------------------------ capabilities

    def space_dimension(self, level: int) -> int:
        """dim V_level, the number of independent functions on ``level``: its node count,
        summed over the geometries of a union; less where a level samples fewer functions
        than it has nodes (band-limited spaces on pixels)."""
        parts = self.parts()
        if parts == [self]:
            self._check_level(level)
            return self.num_nodes(level)
        return sum(part.space_dimension(level) for part in parts)

    def prolong_layout(self, level: int) -> ProlongLayout | None:
        """Views ``(coarse, fine)`` of the node axes of ``level`` and ``level + 1`` in which
        ``prolong`` from ``level`` copies every coarse value to its children, i.e. is
        ``coarse.view(coarse) -> expand(fine)``; None when prolong is no such broadcast.
        A hierarchy that returns a layout must keep it in step with its ``_prolong``."""
        return None

    def healpix_nside(self, level: int) -> int | None:
        """The nside when the nodes of ``level`` are the pixels of a HEALPix grid in NEST order,
        else None."""
        return None

    def healpix_face_nside(self, level: int) -> int | None:
        """The nside when node ``f n² + h n + w`` of ``level`` is pixel ``image[f, h, w]`` of the HEALPix
        ``"face"`` layout (:mod:`geounet.geometry.healpix`), so features ``[B, N, C]`` are channels-last
        face images ``[B, 12, n, n, C]``; else None."""
        return None

    def image_shape(self, level: int) -> tuple[int, int] | None:
        """``(rows, cols)`` when the nodes of ``level`` are the pixels of a row-major image,
        else None."""
        return None

    def node_symmetries(self) -> dict[str, Tensor]:
        """Named permutations ``perm`` ``[num_nodes(finest)]`` int64 of the finest level's nodes
        that are symmetries of the geometry, ``(g x)[n] = x[perm[n]]``; empty when none is known."""
        return {}

    # ------------------------------------------------------------------ constraints

    @property
    def dimension(self) -> int:
        """Intrinsic dimension d of the domain (2 for surfaces and planar domains)."""
        return 2

    def boundary_mask(self, level: int) -> Tensor:
        """Boolean ``[num_nodes(level)]``: the nodes whose values a zero-Dirichlet condition
        fixes. Hierarchies of closed domains have none; those that cannot say raise."""
        raise GeounetError(
            f"{self.kind} does not define boundary nodes, so zero-boundary constraints cannot be applied to it"
        )

    # ------------------------------------------------------------------ public API

    @property
    def finest_level(self) -> int:
        return self.num_levels - 1

    def restrict(self, x: Tensor, level: int) -> Tensor:
        """Project ``x`` ``[..., num_nodes(level), C]`` onto level ``level - 1``."""
        self._check_level(level, lowest=1)
        self._check_nodes(x, level)
        return self._restrict(x, level)

    def prolong(self, x: Tensor, level: int) -> Tensor:
        """Include ``x`` ``[..., num_nodes(level), C]`` into level ``level + 1``."""
        self._check_level(level, highest=self.finest_level - 1)
        self._check_nodes(x, level)
        return self._prolong(x, level)

    def project(self, x: Tensor, level: int, to_level: int) -> Tensor:
        """Project from ``level`` down to ``to_level <= level`` by repeated restriction."""
        if not 0 <= to_level <= level:
            raise GeounetError(f"to_level must lie in [0, {level}], got {to_level}")
        for current in range(level, to_level, -1):
            x = self.restrict(x, current)
        return x

    def integrate(self, x: Tensor, level: int) -> Tensor:
        """The integral of ``x`` ``[..., N, C]`` over the domain, ``[..., C]``."""
        self._check_nodes(x, level)
        weights = self.mass(level).to(dtype=x.dtype, device=x.device)
        return torch.einsum("...nc,n->...c", x, weights)

    def inner(self, x: Tensor, y: Tensor, level: int) -> Tensor:
        """The mass inner product <x, y>_level, summed over nodes and channels, ``[...]``."""
        return self.integrate(x * y, level).sum(-1)

    def components(self, level: int) -> list[int]:
        """Node counts of the independent geometries on ``level``, in node order: one for a
        single geometry, one per mesh for a disjoint union. Per-sample statistics (group
        normalisation) are taken over each separately."""
        return [self.num_nodes(level)]

    def batch(self, level: int) -> Tensor:
        """``[num_nodes(level)]`` int64: the geometry (mesh of a union) each node belongs to, as in
        PyTorch Geometric's ``Batch``; all zeros for a single geometry."""
        sizes = torch.tensor(self.components(level), device=self.device)
        return torch.repeat_interleave(torch.arange(len(sizes), device=self.device), sizes,
                                       output_size=self.num_nodes(level))  # known size: no device sync

    def describe(self) -> list[dict[str, int]]:
        """One row per level: ``{"level", "nodes", "edges"}``."""
        return [
            {"level": i, "nodes": self.num_nodes(i), "edges": self.graph(i).num_edges} for i in range(self.num_levels)
        ]

    # ------------------------------------------------------------------ validation

    def _check_level(self, level: int, lowest: int = 0, highest: int | None = None) -> None:
        highest = self.finest_level if highest is None else highest
        if not isinstance(level, int) or not lowest <= level <= highest:
            raise GeounetError(
                f"level must be an int in [{lowest}, {highest}] for this operation on a "
                f"{self.num_levels}-level {type(self).__name__}, got {level!r}"
            )

    def _check_nodes(self, x: Tensor, level: int) -> None:
        if x.device.type != self.device.type:
            raise GeounetError(
                f"features are on {x.device} but this {self.kind} is on {self.device}; move the geometry "
                f"with hierarchy = hierarchy.to({str(x.device)!r})"
            )
        expected = self.num_nodes(level)
        if x.dim() < 2 or x.shape[-2] != expected:
            raise GeounetError(
                f"expected features of shape [..., {expected}, channels] at level {level} "
                f"of {type(self).__name__}, got {tuple(x.shape)}; features are laid out "
                "[batch, num_nodes, channels]"
            )
