"""ROAD's noisy linear imputation (Rong et al., "A Consistent and Efficient Evaluation Strategy for
Attribution Methods", ICML 2022, Sec. 4): removed pixels filled from their neighbours, so that a
perturbed image stays close to the images the model was trained on.

Every missing pixel becomes the weighted mean of its in-image 8 neighbours, known or missing
(weight 1/6 for the four beside it, 1/12 for the four diagonal ones, as in the authors' code), and
then gets Gaussian noise of standard deviation `noise`. So the missing pixels of one mask solve one
sparse symmetric positive definite system: the grid's graph Laplacian on the missing pixels, the
known ones as boundary values. With `noise=0` the result equals grad-cam's
`pytorch_grad_cam.metrics.road.NoisyLinearImputer(noise=0)` (a test).

How it is solved: one LU factorisation per mask (SuperLU through scipy; torch has no sparse direct
solver on the CPU), the three channels as three right-hand sides, the matrix assembled in one
vectorised step from a neighbour table, its unknowns in a nested-dissection order of the grid
(George, "Nested Dissection of a Regular Finite Element Mesh", SIAM J. Numer. Anal. 1973: split
the image by a one-pixel line, number both halves first, recursively, then the line) computed once
per image size: on a 2-D grid, the order whose factors fill in least, to within a constant factor.
Exact up to float64 rounding.

Cost (bench/faithfulness_cost.py: a 128 x 128 image, one thread on the project's 2-core CPU, calls
interleaved, ratios of medians, three runs): 3.5x-3.9x faster than grad-cam's imputer over the 38
masks of a 20-step deletion and insertion (25 against 90 ms a mask), 2.6x-2.7x on one mask with half
the pixels missing (17 against 47 ms); on a 224 x 224 image, 3.5x. Issue 20 asked for 5x; this does not reach it. The factorisation is
two thirds of the time. Measured and slower: SuperLU's MMD and COLAMD orders, one block-diagonal
solve of all masks, cholespy's sparse Cholesky, pyamg's multigrid to 1e-8, and an exact batched
multifrontal Cholesky in torch over the whole grid with the known pixels as identity rows (2.3x).
"""
from functools import lru_cache

import numpy as np
import torch
from scipy.sparse import csc_array
from scipy.sparse.linalg import splu

NEIGHBOURS = {(0, 1): 1 / 6, (0, -1): 1 / 6, (1, 0): 1 / 6, (-1, 0): 1 / 6,
              (1, 1): 1 / 12, (1, -1): 1 / 12, (-1, 1): 1 / 12, (-1, -1): 1 / 12}
LEAF = 8                      # a box of at most this many pixels is numbered whole in the dissection


def impute(images: torch.Tensor, known: torch.Tensor, noise: float = 0.0,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """[K, C, H, W] `images` with the pixels where `known` [K, H, W] (bool) is False filled by
    linear imputation from their neighbours, plus Gaussian noise of std `noise` drawn from the CPU
    `generator`. A mask with no known pixel has nothing to impute from: its image comes back zero.
    Returns the images' dtype and device."""
    if not (isinstance(images, torch.Tensor) and isinstance(known, torch.Tensor) and images.ndim == 4
            and known.shape == (images.shape[0], *images.shape[2:]) and known.dtype == torch.bool):
        raise ValueError(f"impute needs images [K, C, H, W] and known [K, H, W] bool, got "
                         f"{getattr(images, 'shape', images)} and {getattr(known, 'shape', known)}")
    k, c, h, w = images.shape
    order, neighbours, weights = _grid(h, w)
    values = images.detach().to("cpu", torch.float64).reshape(k, c, h * w).numpy()
    kept = known.to("cpu").reshape(k, h * w).numpy()
    out = np.where(kept[:, None], values, 0.0)                                          # [K, C, H*W]
    place = np.empty(h * w + 1, np.int64)                                               # pixel -> unknown's number
    for i in np.flatnonzero(kept.any(1) & ~kept.all(1)):
        hole = order[~kept[i, order]]                                                   # [m] in dissection order
        place.fill(-1)
        place[hole] = np.arange(len(hole))
        around, entries = neighbours[hole], weights[hole]                               # [m, 9] each
        rows = place[around]                                                            # -1: not missing
        given = np.append(out[i], np.zeros((c, 1)), 1)[:, around]                       # [C, m, 9], 0 where unknown
        rhs = np.einsum("cmj,mj->mc", given, -entries)                                  # [m, C] known neighbours' pull
        inside = rows >= 0                                # rows ascend along each column: CSC's canonical order
        system = csc_array((entries[inside], rows[inside], np.append(0, inside.sum(1).cumsum())),
                           shape=(len(hole), len(hole)))                                # symmetric: CSR = CSC
        system.has_canonical_format = True
        lu = splu(system, permc_spec="NATURAL", diag_pivot_thresh=0.0, options={"SymmetricMode": True})
        out[i][:, hole] = lu.solve(rhs).T
    filled = torch.from_numpy(out).reshape(k, c, h, w)
    if noise:
        filled += ~known.cpu()[:, None] * noise * torch.randn(filled.shape, generator=generator, dtype=filled.dtype)
    return filled.to(images.device, images.dtype)


@lru_cache(maxsize=8)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An h x w grid's pixels in nested-dissection order [H*W], and per pixel its 8 neighbours and
    itself [H*W, 9] in that order (H*W, a zero pixel, for outside the image, last) with the system's
    entries: -w_ij for a neighbour, the sum of the in-image w_ij on the diagonal."""
    number = np.empty((h, w), np.int64)
    count = 0

    def dissect(r0, r1, c0, c1):
        nonlocal count
        if r1 <= r0 or c1 <= c0:
            return
        if (r1 - r0) * (c1 - c0) <= LEAF:
            line = (slice(r0, r1), slice(c0, c1))
        elif r1 - r0 >= c1 - c0:
            m = (r0 + r1) // 2
            dissect(r0, m, c0, c1)
            dissect(m + 1, r1, c0, c1)
            line = (slice(m, m + 1), slice(c0, c1))
        else:
            m = (c0 + c1) // 2
            dissect(r0, r1, c0, m)
            dissect(r0, r1, m + 1, c1)
            line = (slice(r0, r1), slice(m, m + 1))
        size = number[line].size
        number[line] = (count + np.arange(size)).reshape(number[line].shape)
        count += size

    dissect(0, h, 0, w)
    y, x = np.divmod(np.arange(h * w), w)
    neighbours = np.full((h * w, 9), h * w)
    weights = np.zeros((h * w, 9))
    for j, ((dy, dx), weight) in enumerate(NEIGHBOURS.items()):
        inside = (y + dy >= 0) & (y + dy < h) & (x + dx >= 0) & (x + dx < w)
        neighbours[inside, j] = ((y + dy) * w + x + dx)[inside]
        weights[inside, j] = -weight
    neighbours[:, 8], weights[:, 8] = np.arange(h * w), -weights[:, :8].sum(1)
    later = np.append(number.ravel(), h * w)[neighbours].argsort(1, kind="stable")    # in dissection order
    return (np.argsort(number.ravel()), np.take_along_axis(neighbours, later, 1),
            np.take_along_axis(weights, later, 1))
