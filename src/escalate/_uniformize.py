"""A compiled step of uniformization, for the exact solver when it solves many worlds.

``exact`` advances stacked chains with a series of sparse products, one per Poisson term; in
Python every term pays the cost of a scipy call, which dominates a small chain's solve. This
module does the same series in one numba call. It is loaded only by jobs that solve many
parameter sets (exact worlds), so that a single ``solve`` never waits for numba.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["uniformized_piece"]


@njit(cache=True, nogil=True, error_model="numpy")
def uniformized_piece(indptr, indices, data, v, lam, a, max_terms):
    """One step of ``a / lam`` time units: ``(v expm(Q h), integral of it over the step)``.

    ``indptr, indices, data`` hold ``Q`` transposed (CSR), ``lam`` at least every exit rate,
    ``a = lam h``. The same series, in the same order, as ``exact._Uniformized._piece``.
    """
    n = v.shape[0]
    weight = math.exp(-a)  # Poisson(0; a)
    tail = -math.expm1(-a)  # P(N > 0)
    term = v.copy()
    following = np.empty(n)
    out = v * weight
    integral = v * tail
    k = 0
    while k < max_terms and not (k + 1 > a and weight * a / (k + 1 - a) < 1e-17):
        k += 1
        for i in range(n):
            flow = 0.0
            for p in range(indptr[i], indptr[i + 1]):
                flow += data[p] * term[indices[p]]
            following[i] = term[i] + flow / lam
        term, following = following, term
        weight *= a / k
        tail -= weight
        kept = max(tail, 0.0)
        for i in range(n):
            out[i] += term[i] * weight
            integral[i] += term[i] * kept
    for i in range(n):
        out[i] = max(out[i], 0.0)
        integral[i] /= lam
    return out, integral
