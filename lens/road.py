"""ROAD's noisy linear imputation (Rong et al., "A Consistent and Efficient Evaluation Strategy for
Attribution Methods", ICML 2022, Sec. 4): removed pixels filled from their neighbours, so that a
perturbed image stays close to the images the model was trained on.

Every missing pixel becomes the weighted mean of its in-image 8 neighbours, known or missing
(weight 1/6 for the four beside it, 1/12 for the four diagonal ones, as in the authors' code), and
then gets Gaussian noise of standard deviation `noise`. So the missing pixels of one mask solve one
sparse symmetric positive definite system: the grid's graph Laplacian on the missing pixels, the
known ones as boundary values. With `noise=0` the result equals grad-cam's
`pytorch_grad_cam.metrics.road.NoisyLinearImputer(noise=0)` (a test).

How it is solved: one sparse Cholesky factorisation per mask (CHOLMOD's supernodal one, Chen et al.,
ACM TOMS 2008, through cvxopt's wheel: torch has no sparse direct solver on the CPU), the three
channels as three right-hand sides. The known neighbours' pull on every pixel is one 3 x 3
correlation of all the images at once; each mask's matrix is its lower triangle gathered from a
neighbour table, its unknowns in a nested-dissection order of the grid (George, "Nested
Dissection of a Regular Finite Element Mesh", SIAM J. Numer. Anal. 1973: split the image by a
one-pixel line, number both halves first, recursively, then the line) computed once per image
size: on a 2-D grid, the order whose factors fill in least, to within a constant factor. Exact up
to float64 rounding.

Cost (bench/faithfulness_cost.py, one thread, calls interleaved, ratios of medians, two runs): over
the 38 masks of a 20-step deletion and insertion, 5.6x-6.0x faster than grad-cam's imputer on a
128 x 128 image (18-19 against 102-107 ms a mask) and 6.2x on a 224 x 224 one; on one mask with half
the pixels missing, 4.4x-4.8x (16-20 against 74-83 ms) and 5.1x. Measured and slower: SuperLU
with this order (what this used before: 3.5x-3.9x grad-cam), SuperLU's MMD and COLAMD orders,
SuperLU in float32 with a refinement step, one block-diagonal solve of all masks, one factorisation
of the largest mask with the nested masks as its leading blocks (the order this forces fills in 5x
more), QDLDL, cholespy's Cholesky, PARDISO, pyamg's multigrid to 1e-8, and a batched multifrontal
Cholesky in torch.
"""
from functools import lru_cache

import cvxopt
import numpy as np
import torch
from cvxopt import cholmod
from scipy.ndimage import correlate

NEIGHBOURS = {(0, 1): 1 / 6, (0, -1): 1 / 6, (1, 0): 1 / 6, (-1, 0): 1 / 6,
              (1, 1): 1 / 12, (1, -1): 1 / 12, (-1, 1): 1 / 12, (-1, -1): 1 / 12}
LEAF = 8                      # a box of at most this many pixels is numbered whole in the dissection
KERNEL = np.zeros((3, 3))     # the neighbours' weights around a zero centre
for (_dy, _dx), _weight in NEIGHBOURS.items():
    KERNEL[1 + _dy, 1 + _dx] = _weight


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
    order, neighbours, entries, lower = _grid(h, w)
    kept = known.to("cpu").numpy()
    out = np.where(kept[:, None], images.detach().to("cpu", torch.float64).numpy(), 0.0)    # [K, C, H, W]
    pull = correlate(out, KERNEL[None, None], mode="constant").reshape(k, c, h * w)   # known neighbours' share
    out, kept = out.reshape(k, c, h * w), kept.reshape(k, h * w)
    number = np.empty(h * w + 1, np.int64)                                                  # pixel -> its unknown
    for i in np.flatnonzero(kept.any(1) & ~kept.all(1)):
        hole = order[~kept[i, order]]                                                       # [m] in dissection order
        number.fill(-1)
        number[hole] = np.arange(len(hole))
        rows = number[neighbours[hole]]                                                     # [m, 9]; -1: known
        inside = (rows >= 0) & lower[hole]                            # the lower triangle, rows ascending
        out[i][:, hole] = _solve(entries[hole][inside], rows[inside], inside.sum(1), pull[i][:, hole].T).T
    filled = torch.from_numpy(out).reshape(k, c, h, w)
    if noise:
        filled += ~known.cpu()[:, None] * noise * torch.randn(filled.shape, generator=generator, dtype=filled.dtype)
    return filled.to(images.device, images.dtype)


def _solve(values: np.ndarray, rows: np.ndarray, per_column: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """x [m, C] with A x = `rhs` [m, C], A symmetric positive definite given by its lower triangle:
    `values` at `rows`, column by column (`per_column` [m] entries each), unknowns already in a
    fill-reducing order (so CHOLMOD is told to keep it)."""
    m = len(per_column)
    columns = np.repeat(np.arange(m), per_column)
    matrix = cvxopt.spmatrix(cvxopt.matrix(values), cvxopt.matrix(rows), cvxopt.matrix(columns), (m, m))
    cholmod.options.update(supernodal=2, nmethods=1)          # supernodal L L^T; the order given, no other tried
    factor = cholmod.symbolic(matrix, p=cvxopt.matrix(np.arange(m, dtype=np.int32)), uplo="L")
    cholmod.numeric(matrix, factor)
    x = cvxopt.matrix(rhs)
    cholmod.solve(factor, x)
    return np.asarray(x)


@lru_cache(maxsize=8)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """An h x w grid's pixels in nested-dissection order [H*W], and per pixel its 8 neighbours and
    itself [H*W, 9] in that order (H*W, a zero pixel, for outside the image, last) with the system's
    entries (-w_ij for a neighbour, the sum of the in-image w_ij on the diagonal) and whether each is
    in the lower triangle (itself, or a neighbour later in the order)."""
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
    position = np.append(number.ravel(), h * w)[neighbours]
    later = position.argsort(1, kind="stable")                                        # in dissection order
    return (np.argsort(number.ravel()), np.take_along_axis(neighbours, later, 1),
            np.take_along_axis(weights, later, 1),
            np.take_along_axis(position >= number.reshape(-1, 1), later, 1))
