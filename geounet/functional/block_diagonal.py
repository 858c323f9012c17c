"""Disjoint unions of index-based operators: block-diagonal joins by offsetting.

The union of parts with ``n_0, n_1, ..`` nodes numbers part ``j``'s nodes from its offset
``o_j = n_0 + .. + n_{j-1}``, so every node index ``i`` stored in part ``j`` (edge lists,
neighbour tables, parent maps, sparse column indices) becomes ``i + o_j``, and the joined
tensor is the concatenation of the shifted parts. :func:`offset_cat` is that one routine;
the others apply it to a neighbour table and to a CSR matrix. Nothing is sorted, coalesced
or copied to the host: offsets are Python ints, so a join on the GPU runs as a few
elementwise kernels and concatenations.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence

import torch
from torch import Tensor


def offsets_of(sizes: Sequence[int]) -> list[int]:
    """``[0, s_0, s_0 + s_1, .., Σ s]``: where each part starts, and the total (len(sizes) + 1 ints)."""
    return [0, *itertools.accumulate(sizes)]


def offset_cat(parts: Sequence[Tensor], offsets: Sequence[int], dim: int = 0) -> Tensor:
    """``cat([parts[j] + offsets[j] for j], dim)``: the parts' indices numbered in the union.

    ``offsets`` may be longer than ``parts`` (e.g. :func:`offsets_of`, which ends with the total).
    """
    return torch.cat([part + offset for part, offset in zip(parts, offsets, strict=False)], dim=dim)


def index_dtype(parts: Sequence[Tensor], largest: int) -> torch.dtype:
    """int32 when every part is int32 and ``largest`` (the greatest index or count the union
    holds) fits into it, else int64."""
    narrow = all(part.dtype == torch.int32 for part in parts) and largest < 2**31
    return torch.int32 if narrow else torch.int64


def pad_slots(values: Tensor, width: int) -> Tensor:
    """``[N, K, ...] -> [N, width, ...]``, the new slots zero (False for masks)."""
    pad = width - values.shape[1]
    return values if pad == 0 else torch.nn.functional.pad(values, (0, 0) * (values.dim() - 2) + (0, pad))


def block_diagonal_table(tables: Sequence[Tensor], sizes: Sequence[int]) -> Tensor:
    """Neighbour tables ``[N_j, K_j]`` of disjoint graphs joined into ``[Σ N_j, max K_j]``: node
    indices shifted by the offsets, the added slots of a narrower table pointing at the node
    itself (as padded slots do; their weights are zero)."""
    offsets = offsets_of(sizes)
    width = max(table.shape[1] for table in tables)
    dtype = index_dtype(tables, offsets[-1])
    padded = []
    for table, size in zip(tables, sizes, strict=True):
        own = torch.arange(size, device=table.device, dtype=dtype)[:, None].expand(-1, width - table.shape[1])
        padded.append(torch.cat([table.to(dtype), own], dim=1))  # [N_j, width], local indices
    return offset_cat(padded, offsets)


def block_diagonal_csr(matrices: Sequence[Tensor]) -> Tensor:
    """The block-diagonal matrix ``diag(A_0, A_1, ..)`` of sparse CSR ``A_j [R_j, C_j]``, in CSR.

    Row pointers are shifted by the entries of the blocks above, column indices by the columns
    of the blocks to the left; values are concatenated. Each block's rows keep their order,
    so sorted (coalesced) blocks give a sorted union with the same entries and values.
    Indices stay int32 when every block's are and the union fits.
    """
    row_offsets = offsets_of([a.shape[0] for a in matrices])
    column_offsets = offsets_of([a.shape[1] for a in matrices])
    entry_offsets = offsets_of([a.col_indices().numel() for a in matrices])
    rows = [a.crow_indices() for a in matrices]
    columns = [a.col_indices() for a in matrices]
    dtype = index_dtype(rows + columns, max(entry_offsets[-1], column_offsets[-1]))
    crow = offset_cat([rows[0].to(dtype)] + [r[1:].to(dtype) for r in rows[1:]], entry_offsets)  # [R + 1]
    col = offset_cat([c.to(dtype) for c in columns], column_offsets)  # [nnz]
    values = torch.cat([a.values() for a in matrices])
    with warnings.catch_warnings():  # torch's notice that sparse CSR support is in beta
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, col, values, (row_offsets[-1], column_offsets[-1]), check_invariants=False)
