"""Pure functions over tensors and precomputed operators."""
