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
    ``a = lam h``. The same series, in the same order, as ``stepping.Uniformized._piece``.

    Where the rows are of similar lengths (a joint chain's are: a few transitions and trigger
    switches into each state), the product runs on a fixed-width copy of them padded with
    zeros (ELLPACK): every row's loop then has the same trip count, so its exit is
    predicted, which more than pays for the padding's products (the shipped scenario's
    worlds: 15% faster). Each row adds its entries in CSR order and a padding adds an exact
    zero (``0.0 * term[i]``, ``term`` being finite probabilities): the same figures to the
    bit. Uneven rows (one far longer than twice the mean plus one) keep the CSR loop.
    """
    n = v.shape[0]
    width = 0
    for i in range(n):
        width = max(width, indptr[i + 1] - indptr[i])
    padded = width <= 2 * indptr[n] // max(n, 1) + 1
    cols = np.zeros((n if padded else 0, width), dtype=np.int64)
    vals = np.zeros((n if padded else 0, width))
    if padded:
        for i in range(n):
            for w in range(width):
                p = indptr[i] + w
                cols[i, w] = indices[p] if p < indptr[i + 1] else i
                vals[i, w] = data[p] if p < indptr[i + 1] else 0.0
    weight = math.exp(-a)  # Poisson(0; a)
    tail = -math.expm1(-a)  # P(N > 0)
    term = v.copy()
    following = np.empty(n)
    out = v * weight
    integral = v * tail
    k = 0
    while k < max_terms and not (k + 1 > a and weight * a / (k + 1 - a) < 1e-17):
        k += 1
        weight *= a / k
        tail -= weight
        kept = max(tail, 0.0)
        # the next term, term P, and its weights in the distribution and the integral, in
        # one pass; the row loop is written twice so that neither holds the other's branch
        if padded:
            for i in range(n):
                flow = 0.0
                for w in range(width):
                    flow += vals[i, w] * term[cols[i, w]]
                step = term[i] + flow / lam
                following[i] = step
                out[i] += step * weight
                integral[i] += step * kept
        else:
            for i in range(n):
                flow = 0.0
                for p in range(indptr[i], indptr[i + 1]):
                    flow += data[p] * term[indices[p]]
                step = term[i] + flow / lam
                following[i] = step
                out[i] += step * weight
                integral[i] += step * kept
        term, following = following, term
    for i in range(n):
        out[i] = max(out[i], 0.0)
        integral[i] /= lam
    return out, integral
