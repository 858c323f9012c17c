"""Block-diagonal joins by offsetting: the union's tensors are the parts', shifted."""

import pytest
import torch

from geounet.functional.block_diagonal import (
    block_diagonal_csr,
    block_diagonal_table,
    offset_cat,
    offsets_of,
    pad_slots,
)


def _random_csr(rows: int, columns: int, index_dtype: torch.dtype, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    dense = torch.randn(rows, columns, generator=generator, dtype=torch.float64)
    dense[torch.rand(rows, columns, generator=generator) < 0.6] = 0  # some empty rows and columns
    csr = dense.to_sparse_csr()
    return torch.sparse_csr_tensor(csr.crow_indices().to(index_dtype), csr.col_indices().to(index_dtype),
                                   csr.values(), csr.shape)


def test_offsets_and_offset_cat():
    assert offsets_of([3, 0, 2]) == [0, 3, 3, 5]
    parts = [torch.tensor([[0, 2], [1, 0]]), torch.tensor([[1], [0]])]
    torch.testing.assert_close(offset_cat(parts, [0, 3], dim=1), torch.tensor([[0, 2, 4], [1, 0, 3]]))
    torch.testing.assert_close(offset_cat([torch.zeros(2, dtype=torch.int64)] * 3, range(3)),
                               torch.tensor([0, 0, 1, 1, 2, 2]))


@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
def test_block_diagonal_csr_equals_the_dense_block_diagonal(index_dtype):
    blocks = [_random_csr(4, 7, index_dtype, 0), _random_csr(1, 3, index_dtype, 1), _random_csr(5, 2, index_dtype, 2)]
    union = block_diagonal_csr(blocks)
    assert union.layout == torch.sparse_csr and union.shape == (10, 12)
    assert union.crow_indices().dtype == union.col_indices().dtype == index_dtype
    torch.testing.assert_close(union.to_dense(), torch.block_diag(*[b.to_dense() for b in blocks]), rtol=0, atol=0)
    # a valid CSR whose rows list their columns in increasing order, as the blocks' do
    torch.sparse_csr_tensor(union.crow_indices(), union.col_indices(), union.values(), union.shape,
                            check_invariants=True)
    coo = union.to_sparse_coo()
    assert torch.equal(coo.indices(), coo.coalesce().indices())
    x = torch.randn(12, 3, dtype=torch.float64)
    torch.testing.assert_close(union @ x, torch.block_diag(*[b.to_dense() for b in blocks]) @ x)


def test_block_diagonal_csr_widens_mixed_index_dtypes():
    union = block_diagonal_csr([_random_csr(3, 3, torch.int32, 0), _random_csr(2, 4, torch.int64, 1)])
    assert union.crow_indices().dtype == union.col_indices().dtype == torch.int64


def test_block_diagonal_table_pads_with_the_node_itself():
    tables = [torch.tensor([[1, 2], [0, 2], [0, 1]], dtype=torch.int32), torch.tensor([[1], [0]], dtype=torch.int32)]
    union = block_diagonal_table(tables, [3, 2])
    assert union.dtype == torch.int32
    torch.testing.assert_close(union, torch.tensor([[1, 2], [0, 2], [0, 1], [4, 3], [3, 4]], dtype=torch.int32))
    mask = pad_slots(torch.ones(2, 1, dtype=torch.bool), 3)
    assert mask.tolist() == [[True, False, False]] * 2
    assert pad_slots(torch.ones(2, 1, 4), 2)[:, 1].abs().sum() == 0
