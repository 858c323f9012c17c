"""Smallest eigenpairs of sparse Laplacian pencils ``L φ = λ M φ``, certified, per connected component.

**Eigenpairs.** :func:`smallest_eigenpairs` runs ARPACK's Lanczos (scipy ``eigsh``) on
the shift-inverted pencil ``(L - σ M)^{-1} M`` with σ slightly below 0, so the smallest
eigenvalues are the best separated (Ritz values to a relative 1e-12, 1.5 num + 16 Lanczos
vectors: fewest seconds at num = 128 among 1.4 to 2 num). ``L - σ M`` is factorised once as ``P^T L D L^T P``:
a reverse Cuthill-McKee pre-permutation, then SuperLU with the minimum-degree ordering of
``A + A^T``, symmetric mode and no pivoting (stable for a definite matrix). The
pre-permutation matters: on the vertex order of a subdivided icosahedron the
minimum-degree ordering alone takes 60 s at 40 k vertices; after it, 0.3 s.

Every solution is *certified* by Sylvester's law of inertia: the number of eigenvalues
below a point τ in the last spectral gap of the result is the number of negative pivots
``D`` of the factorisation of ``L - τ M``; a Krylov solve that missed a copy of a
degenerate eigenvalue is retried from another start vector with a larger basis.

ARPACK's work outside the solves is matrix-vector products with its basis (BLAS level
2, memory-bound), so multi-threaded BLAS buys little and, on shared cores, stalls; the
solve runs with one BLAS thread unless told otherwise.

**Components.** ``L`` of a mesh of several parts (or of a non-manifold mesh that falls
apart) is block diagonal: every connected component c (of the nonzero pattern of ``L``)
is its own pencil ``(L_c, M_c)``, with one zero eigenvalue (its constant) when ``L_c 1 = 0``.
Solved at once, the pencil has one zero eigenvalue per component and, for parts alike,
every eigenvalue repeated; Lanczos then misses copies, the certificate fails and the solve
is retried with ever larger bases. :func:`componentwise_eigenpairs` solves each component
alone (dense ``eigh`` when it is small) and merges: the ``num`` smallest eigenpairs of
the whole pencil are the ``num`` smallest of the union of the components' eigenpairs, each
zero outside its component (so ``Φ^T M Φ = I`` holds). Component c is first asked for
``k_c ≈ num · A_c / A + 8`` pairs (Weyl's law: on a surface the number of eigenvalues below
λ grows like ``A λ / 4π``); a component whose certified pairs end below the merged
``num``-th eigenvalue is solved again with twice as many, so the union is exact. The
zero eigenvalue of a component with ``L_c 1 = 0`` is set to exactly 0 with the vector
``1 / sqrt(A_c)`` on it. Cost grows like the sum over components of ``n_c k_c`` (see
:func:`estimated_seconds`), so in proportion to the mesh, never with the square of the
number of parts.

**Canonical eigenvectors.** An eigenvector's sign, and the basis of an eigenspace of dimension
m > 1 (a symmetric mesh's degenerate eigenvalues), are not fixed by the pencil: the solver returns
whichever its arithmetic reaches, and a CPU with other BLAS / LAPACK kernels reaches another. A
model that reads coefficients in the basis would then be another function on another machine.
:func:`canonical_eigenvectors` fixes both by the pencil alone. Each eigenspace ``V`` (eigenvalues
equal to ``DEGENERATE_RTOL`` of the largest) gets the basis that M-orthonormalises, in order, the
projections onto ``V`` of fixed probe vectors ``g_1 .. g_m`` (uniform on [-1/2, 1/2], from a seeded
generator: the same numbers on every CPU): with ``C = Φ_V^T M G = U R`` (QR, R's diagonal
positive), the basis is ``Φ_V U``. It does not depend on the basis ``Φ_V`` the solver returned
(``Φ_V O`` for orthogonal ``O`` gives ``C' = O^T C`` and the same ``Φ_V O O^T U``). Every component's
eigenpairs are made canonical before they are merged.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.sparse.csgraph import connected_components, reverse_cuthill_mckee
from threadpoolctl import threadpool_limits

from geounet.errors import GeounetError

#: components with at most this many vertices are solved densely (``scipy.linalg.eigh``)
DENSE_LIMIT = 400
#: eigenvalues closer than this, relative to the largest magnitude among those solved, span one eigenspace
DEGENERATE_RTOL = 1e-8
#: seed of the probe vectors that fix each eigenspace's basis (:func:`canonical_eigenvectors`)
PROBE_SEED = 20231204
#: CPU seconds per (vertex x eigenpair) of one sparse solve, from solves of 2.5 k to 41 k
#: vertices and 32 to 200 eigenpairs on one core (1.1e-6 to 2.2e-6); used only for the logged estimate
SECONDS_PER_VERTEX_PAIR = 2e-6
logger = logging.getLogger(__name__)


class EigensolverError(GeounetError):
    """The Lanczos solve could not be certified (a degenerate eigenvalue at the cut)."""


def smallest_eigenpairs(
    stiffness: sp.spmatrix, mass: np.ndarray, num: int, blas_threads: int | None = 1
) -> tuple[np.ndarray, np.ndarray]:
    """The ``num`` smallest eigenpairs ``(λ [num] ascending, Φ [n, num])`` of ``L φ = λ M φ``.

    Args:
        stiffness: ``L [n, n]`` symmetric positive semi-definite.
        mass: the diagonal of ``M [n]``, positive.
        num: how many, ``1 <= num < n``.
        blas_threads: BLAS threads during the solve (None: leave the setting alone).

    ``Φ^T M Φ = I``. Raises :class:`EigensolverError` when three solves in a row fail the
    inertia certificate (module docstring).
    """
    n = stiffness.shape[0]
    if not (np.isfinite(mass).all() and (mass > 0).all()):
        raise GeounetError("the mass matrix must be positive: every vertex needs a face of positive area")
    if not isinstance(num, int) or not 1 <= num < n:
        raise GeounetError(f"num must be an int in [1, {n - 1}], got {num!r}")
    stiffness = sp.csc_matrix(stiffness, dtype=np.float64)
    mass_matrix = sp.diags(mass).tocsc()
    # σ below the spectrum keeps L - σM positive definite (L is only semi-definite).
    sigma = -1e-6 * float((stiffness.diagonal() / mass).max())
    shifted = SymmetricFactor(stiffness - sigma * mass_matrix)
    if shifted.negative_pivots:
        raise GeounetError(f"the stiffness matrix has {shifted.negative_pivots} negative eigenvalues; it must be "
                         "positive semi-definite (a Laplacian)")
    inverse = spla.LinearOperator((n, n), matvec=shifted.solve, dtype=np.float64)
    with threadpool_limits(blas_threads):
        for attempt in range(3):
            # Krylov methods can miss copies of a degenerate eigenvalue (a start vector has
            # one component per eigenspace), so every solve is certified by Sylvester's law
            # of inertia and retried from another start vector with more Lanczos vectors.
            v0 = np.random.default_rng(attempt).standard_normal(n)
            ncv = min(n, (3 + 2 * attempt) * num // 2 + 16)
            values, vectors = spla.eigsh(
                stiffness, k=num, M=mass_matrix, sigma=sigma, OPinv=inverse, which="LM", v0=v0, ncv=ncv, tol=1e-12
            )
            order = np.argsort(values)
            values, vectors = values[order], vectors[:, order]
            if _certified(stiffness, mass_matrix, values):
                return values, vectors
    raise EigensolverError(f"eigsh missed eigenvalues of this {n}-vertex pencil in three certified tries for the "
                           f"{num} smallest: a degenerate eigenvalue straddles the cut")


class SymmetricFactor:
    """``A = P^T L D L^T P`` of a sparse symmetric matrix ``A`` (SuperLU without pivoting on
    a reverse Cuthill-McKee pre-permutation, then a minimum-degree ordering of A + A^T):
    solves, and the inertia of ``A`` (the number of negative pivots in ``D``)."""

    def __init__(self, matrix: sp.spmatrix):
        matrix = sp.csr_matrix(matrix)
        self.permutation = reverse_cuthill_mckee(matrix, symmetric_mode=True)
        permuted = matrix[self.permutation][:, self.permutation].tocsc()
        self._lu = spla.splu(
            permuted, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True}
        )
        self.negative_pivots = int((self._lu.U.diagonal() < 0).sum())

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """``A^{-1} rhs`` for ``rhs [n]`` or ``[n, k]``."""
        out = np.empty_like(rhs, dtype=np.float64)
        out[self.permutation] = self._lu.solve(np.asarray(rhs, dtype=np.float64)[self.permutation])
        return out


def _certified(stiffness: sp.spmatrix, mass: sp.spmatrix, values: np.ndarray) -> bool:
    """Whether ``values`` holds *all* eigenvalues below its last spectral gap.

    By Sylvester's law of inertia the number of eigenvalues of ``L φ = λ M φ`` below τ is
    the number of negative pivots of an LDL^T factorisation of ``L - τ M``.
    """
    j = _last_gap(values)
    if j is None:
        return True
    for fraction in (0.5, 0.3, 0.7):  # without pivoting a pivot can vanish at one τ: try another
        tau = values[j - 1] + fraction * (values[j] - values[j - 1])
        try:
            return SymmetricFactor(stiffness - tau * mass).negative_pivots == j
        except RuntimeError:  # SuperLU: "Factor is exactly singular"
            continue
    raise RuntimeError("the inertia certificate could not factorise L - τM at three points of the last gap")


def _last_gap(values: np.ndarray) -> int | None:
    """``j`` with ``values[j - 1] < values[j]`` the last spectral gap of ascending ``values``
    (relative 1e-6), or None when they are all one eigenvalue."""
    gaps = np.flatnonzero(np.diff(values) > 1e-6 * np.abs(values[1:]))
    return int(gaps[-1]) + 1 if len(gaps) else None


def component_labels(stiffness: sp.spmatrix) -> tuple[int, np.ndarray]:
    """``(count, labels [n])`` of the connected components of the nonzero pattern of ``stiffness``,
    numbered in the order of their first vertex."""
    pattern = sp.csr_matrix(stiffness, copy=True)
    pattern.data = np.abs(pattern.data)
    pattern.eliminate_zeros()
    count, labels = connected_components(pattern, directed=False)
    first = np.full(count, len(labels))
    np.minimum.at(first, labels, np.arange(len(labels)))
    rank = np.empty(count, dtype=np.int64)
    rank[np.argsort(first)] = np.arange(count)
    return count, rank[labels]


def estimated_seconds(sizes: np.ndarray, pairs: np.ndarray) -> float:
    """Rough CPU seconds of solving components of ``sizes`` vertices for ``pairs`` eigenpairs each."""
    sparse = sizes > DENSE_LIMIT
    return float(SECONDS_PER_VERTEX_PAIR * (sizes[sparse] * pairs[sparse]).sum() + 1e-8 * (sizes[~sparse] ** 3).sum())


def componentwise_eigenpairs(stiffness: sp.spmatrix, mass: np.ndarray, num: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``num`` smallest eigenpairs ``(λ [num] ascending, Φ [n, num])`` of ``L φ = λ M φ``,
    solved per connected component and merged (module docstring). Ties keep the order of
    the components' first vertices."""
    stiffness = sp.csr_matrix(stiffness, dtype=np.float64)
    n = stiffness.shape[0]
    if not isinstance(num, int) or not 1 <= num < n:
        raise GeounetError(f"num must be an int in [1, {n - 1}], got {num!r}")
    count, labels = component_labels(stiffness)
    members = [np.flatnonzero(labels == c) for c in range(count)]
    sizes = np.array([len(m) for m in members])
    areas = np.array([mass[m].sum() for m in members])
    want = np.minimum(sizes, np.ceil(num * areas / areas.sum()).astype(int) + 8)
    estimate = estimated_seconds(sizes, want)
    log = logger.warning if estimate > 60 else logger.info
    log("solving for %d eigenpairs on %d vertices in %d component(s) (largest %d): about %.0f s", num, n, count,
        sizes.max(), math.ceil(estimate))
    solved: dict[int, tuple[np.ndarray, np.ndarray, float]] = {}
    pending = list(range(count))
    while pending:
        for c in pending:
            with threadpool_limits(1):  # see the module docstring
                solved[c] = _component(stiffness[members[c]][:, members[c]], mass[members[c]], int(want[c]))
        merged = np.sort(np.concatenate([values for values, _, _ in solved.values()]))
        cut = merged[num - 1] if len(merged) >= num else np.inf  # the num-th eigenvalue so far
        pending = [c for c in range(count) if solved[c][2] < cut]  # may hold eigenvalues below the cut
        want[pending] = np.minimum(sizes[pending], 2 * want[pending])
    values = np.concatenate([solved[c][0] for c in range(count)])
    owner = np.concatenate([np.full(len(solved[c][0]), c) for c in range(count)])
    local = np.concatenate([np.arange(len(solved[c][0])) for c in range(count)])
    order = np.lexsort((owner, values))[:num]  # by eigenvalue, ties by component
    vectors = np.zeros((n, num))  # [n, num]: each column zero outside its component
    for c in range(count):
        columns = np.flatnonzero(owner[order] == c)
        vectors[np.ix_(members[c], columns)] = solved[c][1][:, local[order][columns]]
    return values[order], vectors


def eigenspaces(values: np.ndarray, complete: float = np.inf) -> list[tuple[int, int]]:
    """``(start, stop)`` column ranges of the eigenspaces of ascending ``values``: runs in which each
    eigenvalue is within ``DEGENERATE_RTOL`` times the largest magnitude of ``values`` of the one
    before, up to ``complete`` (the eigenspaces above it may be missing vectors)."""
    k = len(values)
    scale = float(np.abs(values).max()) if k else 0.0
    spaces, start = [], 0
    while start < k and values[start] <= complete:
        stop = start + 1
        while stop < k and values[stop] - values[stop - 1] <= DEGENERATE_RTOL * scale:
            stop += 1
        spaces.append((start, stop))
        start = stop
    return spaces


def canonical_eigenvectors(values: np.ndarray, vectors: np.ndarray, mass: np.ndarray,
                           complete: float = np.inf) -> np.ndarray:
    """``Φ [n, k]`` with every eigenspace's basis fixed by the pencil (module docstring).

    Args:
        values: ``λ [k]`` ascending.
        vectors: ``Φ [n, k]``, M-orthonormal, column j an eigenvector of ``values[j]``.
        mass: the diagonal of ``M [n]``.
        complete: eigenspaces above this eigenvalue may be missing vectors (a solve cut inside
            them); they are left as they are.
    """
    spaces = eigenspaces(values, complete)
    largest = max((stop - start for start, stop in spaces), default=0)
    # probe j is row j of one draw, so it is the same for any k and any eigenspace: g_1 .. g_m [n]
    probes = np.random.default_rng(PROBE_SEED).random((largest, len(mass))).T - 0.5  # [n, m_max]
    canonical = vectors.copy()
    for start, stop in spaces:
        block = vectors[:, start:stop]  # [n, m], one eigenspace
        coefficients = block.T @ (mass[:, None] * probes[:, : stop - start])  # [m, m]: C = Φ_V^T M G
        rotation, triangular = np.linalg.qr(coefficients)
        rotation *= np.where(np.diag(triangular) < 0, -1.0, 1.0)  # the QR whose R has a positive diagonal
        canonical[:, start:stop] = block @ rotation
    return canonical


def _component(stiffness: sp.csr_matrix, mass: np.ndarray, want: int) -> tuple[np.ndarray, np.ndarray, float]:
    """``(λ [k], Φ [n_c, k], complete)``: the smallest eigenpairs of one connected component,
    with ``complete`` the eigenvalue up to which every eigenpair is among them, the eigenvectors
    canonical (:func:`canonical_eigenvectors`)."""
    n = len(mass)
    if n <= DENSE_LIMIT or want >= n - 1:  # every eigenpair
        values, vectors = scipy.linalg.eigh(stiffness.toarray(), np.diag(mass))
        complete = np.inf
    else:
        values, vectors = smallest_eigenpairs(stiffness, mass, want)
        gap = _last_gap(values)
        complete = values[gap - 1] if gap is not None else -np.inf
    vectors = canonical_eigenvectors(values, vectors, mass, complete)
    if abs(stiffness.sum(axis=1)).max() <= 1e-12 * abs(stiffness).max():  # L_c 1 = 0: the constant
        values = values.copy()
        values[0] = 0.0
        vectors[:, 0] = 1 / np.sqrt(mass.sum())  # canonical_eigenvectors returned a copy
    return values, vectors, complete
