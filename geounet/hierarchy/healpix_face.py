"""HEALPix Haar hierarchy in face-image node order: the NEST hierarchy's spaces, laid out as images.

The spaces V_i are exactly those of :class:`~geounet.hierarchy.healpix.HealpixHaarHierarchy`
(piecewise constants on the pixels of ``nside_i = nside_0 2**i``, equal masses
``4π / N_i``); only the order of the nodes differs. Node

    n = f n_i² + h n_i + w

is pixel ``image[f, h, w]`` of the ``"face"`` layout (DLWP-HEALPix's ``face_n_cw``,
:mod:`geounet.geometry.healpix`), so features ``[B, 12 n_i², C]`` are, with no copy, the
channels-last face images ``[B, 12, n_i, n_i, C]``, and ``[B * 12, C, n_i, n_i]`` with
channels-last strides is a view of them: what ``conv2d`` reads fastest on the CPU.

The 4 children of coarse pixel ``(f, H, W)`` are the fine pixels ``(f, 2H + a, 2W + b)``,
``a, b ∈ {0, 1}`` (the layout's ``h = n-1-x``, ``w = n-1-y`` halve with the face
coordinates), so the mass-orthogonal projection is 2 x 2 average pooling within each face
and the inclusion is 2 x 2 repetition (nearest upsampling):

    (P x)[f, H, W] = (1/4) Σ_{a,b} x[f, 2H + a, 2W + b],     (ι u)[f, h, w] = u[f, h // 2, w // 2],

both pure views of the node axis (``[12, m, 2, m, 2]`` against ``[12, m, 1, m, 1]``), which
the decoder fuses with its concatenation (:meth:`HealpixFaceHierarchy.prolong_layout`).
Each level's graph is the NEST 8-neighbour graph with its nodes renumbered
(:func:`healpix_face_level_graph`), neighbour slots still in healpy's order.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from geounet.functional.children import child_mean, child_repeat
from geounet.geometry.healpix import from_nest, nest_of_face, npix, nside_from_npix, to_nest
from geounet.hierarchy.base import LevelGraph, ProlongLayout
from geounet.hierarchy.healpix import HealpixHaarHierarchy, HealpixLevels, healpix_level_graph


def nest_of_node(nside: int) -> Tensor:
    """``[12 nside²]`` int64: the NEST index of every node of the flattened ``"face"`` layout."""
    return nest_of_face(nside, "face").reshape(-1)


def face_nodes_from_nest(x: Tensor) -> Tensor:
    """NEST features ``[..., N, C]`` in this hierarchy's node order ``[..., N, C]`` (a copy)."""
    images = from_nest(x, "face", channels_last=True)  # [..., 12, n, n, C]
    return images.reshape(*x.shape)


def nest_from_face_nodes(x: Tensor) -> Tensor:
    """Features ``[..., N, C]`` in this hierarchy's node order back in NEST order (a copy)."""
    *lead, num, channels = x.shape
    nside = nside_from_npix(num)
    return to_nest(x.reshape(*lead, 12, nside, nside, channels), "face", channels_last=True)


def healpix_face_level_graph(nside: int) -> LevelGraph:
    """The NEST 8-neighbour graph of :func:`~geounet.hierarchy.healpix.healpix_level_graph` with
    every node renumbered to the ``"face"`` layout: row ``n`` of ``neighbours [N, 8]`` is NEST
    pixel ``nest_of_node[n]``'s row, its entries renumbered; slots keep healpy's order (SW, W,
    NW, N, NE, E, SE, S), missing ones point at the node itself with ``neighbour_mask`` False.
    ``positions`` and ``neighbour_attr`` are the NEST graph's rows, derived on each access."""
    nest = healpix_level_graph(nside)
    order = nest_of_node(nside)  # [N]: node -> NEST pixel
    node = torch.argsort(order).to(nest.neighbours.dtype)  # [N]: NEST pixel -> node
    return LevelGraph(neighbours=node[nest.neighbours[order].long()], neighbour_mask=nest.neighbour_mask[order],
                      derive=functools.partial(_face_geometry, nside))


def _face_geometry(nside: int, graph: LevelGraph, name: str) -> Tensor | None:
    """``positions`` / ``neighbour_attr`` of the face-ordered graph: the NEST graph's, rows reordered."""
    if name not in ("positions", "neighbour_attr"):
        return None
    nest = healpix_level_graph(nside)
    return getattr(nest, name)[nest_of_node(nside).to(graph.neighbours.device)]


def kind_change_hint(model_kind: str, hierarchy_kind: str) -> str:
    """What to do when a model built for ``model_kind`` meets a hierarchy of ``hierarchy_kind``: for
    the NEST and face HEALPix kinds (the same spaces, nodes in another order), how to move the
    model and the data over; empty for other pairs."""
    orders = {HealpixHaarHierarchy.kind: ("NEST", "nest_from_face_nodes"),
              HealpixFaceHierarchy.kind: ("'face'", "face_nodes_from_nest")}
    if {model_kind, hierarchy_kind} != set(orders):
        return ""
    order, convert = orders[model_kind]
    return (f"the two hold the same HEALPix spaces, nodes in NEST and in 'face' order: build the model for "
            f"{hierarchy_kind} and load this one's state_dict into it, which gives the same function for the "
            f"operators 'message_passing' with kernel 'linear' and 'conv3x3', or call this model with a {model_kind} "
            f"and features converted to {order} order by geounet.hierarchy.{convert}")


class HealpixFaceHierarchy(HealpixLevels):
    """Haar hierarchy on HEALPix grids in face-image node order: restrict = 2 x 2 mean pooling in
    each face, prolong = 2 x 2 repetition. The spaces of ``HealpixHaarHierarchy(nside, num_levels)``
    with the nodes of every level permuted to the flattened ``"face"`` layout; convert features
    with :func:`face_nodes_from_nest` / :func:`nest_from_face_nodes`."""

    kind = "HealpixFaceHierarchy"

    def graph(self, level: int) -> LevelGraph:
        """The level's face-ordered 8-neighbour graph (:func:`healpix_face_level_graph`), built once."""
        self._check_level(level)
        if level not in self._graphs:
            self._graphs[level] = healpix_face_level_graph(self.nside_at(level))
        return self._graphs[level]

    def healpix_nside(self, level: int) -> int | None:
        """None: the nodes are HEALPix pixels, but not in NEST order (see :meth:`healpix_face_nside`)."""
        return None

    def healpix_face_nside(self, level: int) -> int | None:
        self._check_level(level)
        return self.nside_at(level)

    def prolong_layout(self, level: int) -> ProlongLayout:
        """Coarse ``[12, m, 1, m, 1]``, fine ``[12, m, 2, m, 2]`` for the coarse face side ``m``."""
        side = self.nside_at(level)
        return (12, side, 1, side, 1), (12, side, 2, side, 2)

    def _restrict(self, x: Tensor, level: int) -> Tensor:
        side = self.nside_at(level) // 2
        *lead, _, channels = x.shape
        pooled = child_mean(x.reshape(*lead, 12, side, 2, side, 2, channels), (-4, -2))  # [..., 12, m, 1, m, 1, C]
        return pooled.reshape(*lead, npix(side), channels)

    def _prolong(self, x: Tensor, level: int) -> Tensor:
        side = self.nside_at(level)
        *lead, _, channels = x.shape
        coarse = x.reshape(*lead, 12, side, 1, side, 1, channels)
        return child_repeat(coarse, (*lead, 12, side, 2, side, 2, channels)).reshape(*lead, 4 * npix(side), channels)
