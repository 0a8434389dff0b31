"""Lanczos in float64 with full reorthogonalisation (classical Gram-Schmidt, twice), many lanes in lockstep.

Two drivers share one batched product per step:
- ``lanczos_tridiagonal``: independent lanes (one per start vector and segment), each with its own tridiagonal
  (alphas, betas): what stochastic Lanczos quadrature needs.
- ``lanczos``: top-k (or bottom-k) eigenpairs. Its ``num_starts`` random start vectors span one block Krylov
  space (each new vector is orthogonalised against all of them), so it also resolves eigenvalues of
  multiplicity up to ``num_starts``; with one start it is the classic single-vector Lanczos.

A lane stops (its vector becomes zero) when its new direction has norm <= ``BREAKDOWN * ||H q||``: the Krylov
space is invariant (e.g. a block smaller than the number of steps has been exhausted), so its Ritz values are
exact. Nothing in the step loop synchronises with the host except the convergence test of ``lanczos``: it reads
the small projected matrix back every ``check_every`` steps (default every step: a tiny tridiagonal eigensolve
next to a curvature product, and the stop comes as early as the residuals allow).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from hessian_spectra.curvature.probes import make_generator, random_probes

log = logging.getLogger(__name__)

BREAKDOWN = 1e-10
TINY = float(np.finfo(np.float64).eps) ** 0.5
WHICH = ("LA", "SA")


class _Basis:
    """Growable float64 storage of basis blocks, (steps, lanes, n), filled in order."""

    def __init__(self, lanes: int, n: int, device: torch.device, capacity: int, limit: int) -> None:
        self.limit = limit
        self.buf = torch.empty(min(capacity, limit), lanes, n, dtype=torch.float64, device=device)
        self.size = 0

    def append(self, block: Tensor) -> None:
        if self.size == self.buf.shape[0]:
            grown = torch.empty(
                min(2 * self.size, self.limit), *self.buf.shape[1:], dtype=self.buf.dtype, device=self.buf.device
            )
            grown[: self.size] = self.buf
            self.buf = grown
        self.buf[self.size] = block
        self.size += 1

    def view(self) -> Tensor:
        return self.buf[: self.size]


def _start_blocks(op, V0: Tensor) -> list[Tensor]:
    """Start vectors (n, k) -> per segment a (k, n_b) block with unit-norm rows."""
    X = V0.T.to(torch.float64)
    blocks = []
    for lo, hi in op.segments:
        part = X[:, lo:hi]
        blocks.append(part / part.norm(dim=1, keepdim=True))
    return blocks


def _apply(op, blocks: list[Tensor]) -> list[Tensor]:
    """One batched product: per segment (k, n_b) blocks in, per segment (k, n_b) products out."""
    X = torch.cat(blocks, dim=1) if len(blocks) > 1 else blocks[0]
    W = op.matmat(X.T).T
    return [W[:, lo:hi] for lo, hi in op.segments]


def _cgs2(basis: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    """Orthogonalise coupled lanes ``w`` (k, n) against every vector of ``basis`` (i, k, n), twice.

    Returns (w, coefficients (i, k, k): basis vector (step, lane) against new lane)."""
    flat = basis.reshape(-1, basis.shape[-1])
    total = None
    for _ in range(2):
        c = flat @ w.T
        w = w - c.T @ flat
        total = c if total is None else total + c
    return w, total.reshape(basis.shape[0], basis.shape[1], -1)


def _cgs2_lanes(basis: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    """Orthogonalise independent lanes ``w`` (k, n), each against its own basis ``basis`` (k, i, n), twice.

    Lane-major storage makes both passes batched matrix products without copying the basis."""
    total = None
    for _ in range(2):
        c = torch.bmm(basis, w.unsqueeze(2)).squeeze(2)
        w = w - torch.bmm(c.unsqueeze(1), basis).squeeze(1)
        total = c if total is None else total + c
    return w, total


# ---------------------------------------------------------------------------------------------------- SLQ lanes
@dataclass
class LanczosRun:
    """Independent Lanczos lanes: per segment s and lane j the tridiagonal T with diagonal
    ``alphas[s, j, :m]`` and off-diagonal ``betas[s, j, :m-1]``, m = ``lengths[s, j]``; ``betas[s, j, m-1]`` is
    the norm of the residual after the last step. ``basis[s]`` is (steps + 1, lanes, n_s) when kept."""

    alphas: np.ndarray
    betas: np.ndarray
    lengths: np.ndarray
    products: int
    basis: list[Tensor] | None = None

    def tridiagonal(self, segment: int, lane: int) -> tuple[np.ndarray, np.ndarray]:
        """The diagonal and off-diagonal of the tridiagonal T of one segment's lane."""
        m = int(self.lengths[segment, lane])
        return self.alphas[segment, lane, :m], self.betas[segment, lane, : m - 1]

    def ritz(self, segment: int, lane: int) -> tuple[np.ndarray, np.ndarray]:
        """Ritz values (nodes) and squared first components of T's eigenvectors (weights, summing to 1)."""
        from scipy.linalg import eigh_tridiagonal  # scipy costs a second at import: only SLQ needs it

        alpha, beta = self.tridiagonal(segment, lane)
        if len(alpha) == 1:
            return alpha.copy(), np.ones(1)
        nodes, vectors = eigh_tridiagonal(alpha, beta)
        return nodes, vectors[0] ** 2


def lanczos_tridiagonal(op, V0: Tensor, num_steps: int, keep_basis: bool = False) -> LanczosRun:
    """Run ``num_steps`` Lanczos steps from every column of ``V0`` (n, k) in every segment, independently."""
    starts = _start_blocks(op, V0)
    k = starts[0].shape[0]
    sizes = [hi - lo for lo, hi in op.segments]
    steps = max(1, min(num_steps, max(sizes)))
    # lane-major (k, steps + 1, n_b): each lane's basis is a contiguous matrix for the batched products
    bases = [torch.empty(k, steps + 1, n_b, dtype=torch.float64, device=op.device) for n_b in sizes]
    for basis, start in zip(bases, starts):
        basis[:, 0] = start
    scale = [torch.zeros(k, dtype=torch.float64, device=op.device) for _ in sizes]
    alphas = torch.zeros(len(sizes), k, steps, dtype=torch.float64, device=op.device)
    betas = torch.zeros_like(alphas)
    products0 = op.products
    current = starts
    for i in range(steps):
        products = _apply(op, current)
        current = []
        for s, (basis, w) in enumerate(zip(bases, products)):
            scale[s] = torch.maximum(scale[s], w.norm(dim=1))
            w, c = _cgs2_lanes(basis[:, : i + 1], w)
            beta = w.norm(dim=1)
            stop = beta <= BREAKDOWN * scale[s]
            beta = torch.where(stop, torch.zeros_like(beta), beta)
            nxt = torch.where(stop[:, None], torch.zeros_like(w), w / beta.clamp_min(1e-300)[:, None])
            alphas[s, :, i] = c[:, i]
            betas[s, :, i] = beta
            basis[:, i + 1] = nxt
            current.append(nxt)
    alphas_h, betas_h = alphas.cpu().numpy(), betas.cpu().numpy()
    stopped = betas_h == 0.0
    lengths = np.where(stopped.any(axis=2), stopped.argmax(axis=2) + 1, steps)
    return LanczosRun(
        alphas=alphas_h,
        betas=betas_h,
        lengths=lengths,
        products=op.products - products0,
        basis=[b.transpose(0, 1) for b in bases] if keep_basis else None,
    )


# ---------------------------------------------------------------------------------------------------- top-k
@dataclass
class LanczosResult:
    """Wanted eigenpairs. For a block-diagonal operator arrays have a leading segment axis (one row per block);
    otherwise they are 1-D. Entries beyond a block's dimension are NaN and not converged.

    ``residuals`` are ||H u - theta u||: from ``beta * |last component|`` (the Lanczos relation), or recomputed
    with extra products when ``explicit_residuals`` was asked (``estimated_residuals`` keeps the former).
    ``eigenvectors`` is (n, k): column i holds, within each segment, that segment's i-th Ritz vector."""

    eigenvalues: np.ndarray
    residuals: np.ndarray
    converged: np.ndarray
    steps: int
    products: int
    which: str
    eigenvectors: Tensor | None = None
    estimated_residuals: np.ndarray | None = None
    projected: list[np.ndarray] = field(default_factory=list)
    basis: list[Tensor] | None = None

    @property
    def all_converged(self) -> bool:
        """Whether every computed eigenvalue converged (NaN entries, not computed, are left out)."""
        return bool(np.all(self.converged[~np.isnan(self.eigenvalues)]))


class _CoupledSegment:
    """State of one segment's block Lanczos run (``lanes`` coupled start vectors)."""

    def __init__(self, start: Tensor, capacity: int, limit: int) -> None:
        lanes, n = start.shape
        self.lanes, self.n = lanes, n
        self.basis = _Basis(lanes, n, start.device, capacity, limit)
        self.coeffs: list[Tensor] = []  # step i: (i+1, lanes, lanes) = Q_{<=i}^T H Q_i
        self.links: list[Tensor] = []  # step i: (lanes, lanes) = Q_{i+1}^T H Q_i (upper triangular)
        self.active: list[Tensor] = []  # step i: (lanes,) bool, basis block i's vectors that are nonzero
        self.scale = torch.zeros((), dtype=torch.float64, device=start.device)
        first, _, active = self._orthonormalise(start.clone())
        self.basis.append(first)
        self.active.append(active)

    def _orthonormalise(self, w: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Gram-Schmidt (twice) among the lanes; deflated lanes become zero."""
        R = torch.zeros(self.lanes, self.lanes, dtype=torch.float64, device=w.device)
        rows = []
        for t in range(self.lanes):
            v = w[t]
            for _ in range(2):
                for u, q in enumerate(rows):
                    r = q @ v
                    v = v - r * q
                    R[u, t] += r
            norm = v.norm()
            keep = norm > BREAKDOWN * self.scale
            R[t, t] = torch.where(keep, norm, torch.zeros_like(norm))
            rows.append(torch.where(keep, v / norm.clamp_min(1e-300), torch.zeros_like(v)))
        return torch.stack(rows), R, R.diagonal() > 0

    def step(self, w: Tensor) -> Tensor:
        self.scale = torch.maximum(self.scale, w.norm(dim=1).max())
        w, c = _cgs2(self.basis.view(), w)
        nxt, R, active = self._orthonormalise(w)
        self.coeffs.append(c)
        self.links.append(R)
        self.basis.append(nxt)
        self.active.append(active)
        return nxt

    def restart(self, gen: torch.Generator) -> bool:
        """Replace the current block's deflated lanes by random vectors orthogonal to the basis.

        A deflated lane has found an invariant subspace; the space beyond it (further copies of repeated
        eigenvalues, e.g. a null space) is reached only from a new direction. The new vector enters with zero
        coupling to the previous block, and its products are projected explicitly, so Rayleigh-Ritz stays exact.
        Returns whether anything was replaced."""
        current = self.active[-1]
        if bool(current.all()) or int(torch.cat(self.active).sum()) >= self.n:
            return False
        block = self.basis.view()[-1]
        for t in torch.nonzero(~current).flatten().tolist():
            if int(torch.cat(self.active).sum()) >= self.n:
                break
            r = torch.randn(1, self.n, generator=gen, dtype=torch.float64).to(block.device)
            r = _cgs2(self.basis.view(), r)[0]
            r = _cgs2(self.basis.view(), r / r.norm())[0]
            block[t] = r[0] / r.norm()
            current[t] = True
        return True

    def ritz(self, which: str, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
        """(theta, Y over the active basis, estimated residuals, projected matrix, space exhausted)."""
        m, s = len(self.coeffs), self.lanes
        P = np.zeros((m * s, m * s))
        for i, c in enumerate(self.coeffs):
            P[: (i + 1) * s, i * s : (i + 1) * s] = c.reshape((i + 1) * s, s).cpu().numpy()
        for i, R in enumerate(self.links[:-1]):
            P[(i + 1) * s : (i + 2) * s, i * s : (i + 1) * s] = R.cpu().numpy()
        active = torch.cat(self.active[:m]).cpu().numpy()
        idx = np.flatnonzero(active)
        A = P[np.ix_(idx, idx)]
        A = 0.5 * (A + A.T)
        theta, Y = np.linalg.eigh(A)
        order = np.argsort(-theta) if which == "LA" else np.argsort(theta)
        order = order[:k]
        theta, Y = theta[order], Y[:, order]
        full = np.zeros((m * s, len(order)))
        full[idx] = Y
        last = self.links[-1].cpu().numpy()
        residuals = np.linalg.norm(last @ full[(m - 1) * s :], axis=0)
        return theta, full, residuals, A, len(idx) >= self.n

    def vectors(self, Y: np.ndarray) -> Tensor:
        """Ritz vectors (k, n) from coefficients Y (m * lanes, k)."""
        Q = self.basis.view()[: Y.shape[0] // self.lanes].reshape(-1, self.n)
        return torch.from_numpy(Y.T.copy()).to(Q) @ Q


def lanczos(
    op,
    k: int = 5,
    which: str = "LA",
    tol: float = 1e-6,
    max_steps: int = 200,
    num_starts: int = 1,
    seed: int | torch.Generator | None = 0,
    eigenvectors: bool = False,
    explicit_residuals: bool = False,
    check_every: int = 1,
    keep_basis: bool = False,
    V0: Tensor | None = None,
) -> LanczosResult:
    """Top-k (``which="LA"``, largest algebraic) or bottom-k (``"SA"``) eigenpairs of every segment of ``op``.

    Stops when every wanted Ritz value has residual <= ``tol * max(|theta|, tiny)`` in every segment, when the
    Krylov space is exhausted, or after ``max_steps`` steps (each step multiplies ``num_starts`` vectors).
    Convergence is tested every ``check_every`` steps, from step ``ceil(min(2k, smallest segment) / num_starts)``
    on; a segment whose Krylov space became invariant before enough eigenvalues were found restarts there.
    """
    if which not in WHICH:
        raise ValueError(f"which must be one of {WHICH}, got {which!r}")
    if k < 1 or max_steps < 1 or num_starts < 1:
        raise ValueError("k, max_steps and num_starts must be positive")
    gen = make_generator(seed)
    if V0 is None:
        V0 = random_probes(op, num_starts, "gaussian", gen)
    starts = _start_blocks(op, V0)
    sizes = [hi - lo for lo, hi in op.segments]
    limit = max_steps + 1
    capacity = min(limit, max(math.ceil(n_b / num_starts) for n_b in sizes) + 1, 32)
    segments = [_CoupledSegment(start, capacity, limit) for start in starts]
    next_check = max(1, math.ceil(min(2 * k, min(sizes)) / num_starts))
    products0 = op.products
    current = [seg.basis.view()[0] for seg in segments]
    steps = 0
    while True:
        products = _apply(op, current)
        current = [seg.step(w) for seg, w in zip(segments, products)]
        steps += 1
        if steps < next_check and steps + 1 < limit:
            continue
        next_check = steps + check_every
        ritz = [seg.ritz(which, min(k, seg.n)) for seg in segments]
        pending = [
            not exhausted and not (len(theta) == min(k, seg.n) and _converged(theta, res, tol, A).all())
            for seg, (theta, _, res, A, exhausted) in zip(segments, ritz)
        ]
        log.debug("lanczos step %d: %s", steps, [theta[:3] for theta, *_ in ritz])
        if not any(pending) or steps + 1 >= limit:
            break
        for seg, wait in zip(segments, pending):
            if wait and seg.restart(gen):
                current = [seg.basis.view()[-1] for seg in segments]
                next_check = steps + 1  # invariant subspaces come in runs (a null space): look again soon

    values = np.full((len(segments), k), np.nan)
    residuals = np.full((len(segments), k), np.nan)
    converged = np.zeros((len(segments), k), dtype=bool)
    vectors = (
        torch.zeros(k, op.shape[0], dtype=torch.float64, device=op.device)
        if (eigenvectors or explicit_residuals)
        else None
    )
    for b, ((theta, Y, res, projected, exhausted), seg, (lo, hi)) in enumerate(zip(ritz, segments, op.segments)):
        kb = len(theta)
        values[b, :kb] = theta
        residuals[b, :kb] = res
        converged[b, :kb] = True if exhausted else _converged(theta, res, tol, projected)
        if vectors is not None:
            vectors[:kb, lo:hi] = seg.vectors(Y)
    estimated = None
    if explicit_residuals:
        estimated = residuals.copy()
        HU = op.matmat(vectors.T).T
        for b, (lo, hi) in enumerate(op.segments):
            kb = int(np.sum(~np.isnan(values[b])))
            theta = torch.from_numpy(values[b, :kb]).to(HU)
            R = HU[:kb, lo:hi] - theta[:, None] * vectors[:kb, lo:hi]
            residuals[b, :kb] = R.norm(dim=1).cpu().numpy()
    result = LanczosResult(
        eigenvalues=values,
        residuals=residuals,
        converged=converged,
        steps=steps,
        products=op.products - products0,
        which=which,
        eigenvectors=vectors.T if (vectors is not None and eigenvectors) else None,
        estimated_residuals=estimated,
        projected=[A for _, _, _, A, _ in ritz],
        basis=[seg.basis.view() for seg in segments] if keep_basis else None,
    )
    if op.blocks is None:
        result.eigenvalues, result.residuals, result.converged = values[0], residuals[0], converged[0]
        if estimated is not None:
            result.estimated_residuals = estimated[0]
    if not result.all_converged:
        log.warning(
            "lanczos: not all wanted eigenvalues converged after %d steps (tol %g); results are flagged", steps, tol
        )
    return result


def _converged(theta: np.ndarray, residuals: np.ndarray, tol: float, projected: np.ndarray) -> np.ndarray:
    """residual <= tol * max(|theta|, tiny), tiny = sqrt(eps) * ||H|| (estimated from the projected matrix)."""
    norm = np.abs(np.linalg.eigvalsh(projected)).max() if projected.size else 0.0
    return residuals <= tol * np.maximum(np.abs(theta), TINY * norm)
