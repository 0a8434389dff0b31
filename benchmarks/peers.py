"""The peer libraries, each called as its documentation shows, with product counters and the runtime patches
today's PyTorch needs (site-packages is never edited).

Patches (``PATCHES`` lists them for the report):
- PyHessian 0.1 ``density()`` calls ``torch.eig``, which PyTorch 2 keeps only as a stub that raises;
  ``torch_eig_shim`` replaces it for the duration of one call by ``torch.linalg.eigh`` (the tridiagonal is
  symmetric). Nothing else needed a change.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

PATCHES = [
    "PyHessian 0.1 `density()`: `torch.eig` was removed from PyTorch; the harness supplies it during the call from "
    "`torch.linalg.eigh` (`torch_eig_shim` in benchmarks/peers.py). Without it `density()` runs all its products "
    "and then raises (section 3 records the error).",
]

Batches = Sequence[tuple[Tensor, Tensor]]


@dataclass
class EigenRun:
    """Eigenvalues as a method returned them, their vectors as (n, k) columns, and the products it made."""

    eigenvalues: np.ndarray
    vectors: Tensor
    products: int


def _trainable(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


# ---------------------------------------------------------------------------------------------------- PyHessian
def _pyhessian(model: nn.Module, batches: Batches, device: torch.device):
    from pyhessian import hessian

    computer = hessian(model.eval(), nn.CrossEntropyLoss(), dataloader=list(batches), cuda=device.type == "cuda")
    count = [0]
    product = computer.dataloader_hv_product

    def counted(v):
        count[0] += 1
        return product(v)

    computer.dataloader_hv_product = counted
    return computer, count


@contextlib.contextmanager
def _pyhessian_call(model: nn.Module) -> Iterator[None]:
    """Silence the reference-cycle warning of PyHessian's ``backward(create_graph=True)`` (one per product) and
    drop the graph-holding gradients it leaves on the model."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        model.zero_grad(set_to_none=True)


def pyhessian_top(model: nn.Module, batches: Batches, device: torch.device, k: int) -> EigenRun:
    """PyHessian's ``eigenvalues(top_n=k)`` with its defaults (deflated power iteration, 100 iterations, tol 1e-3)."""
    with _pyhessian_call(model):
        computer, count = _pyhessian(model, batches, device)
        values, vectors = computer.eigenvalues(top_n=k)
    columns = torch.stack([torch.cat([t.reshape(-1) for t in vec]) for vec in vectors], dim=1)
    return EigenRun(np.array(values, dtype=float), columns.to(torch.float64), count[0])


@contextlib.contextmanager
def torch_eig_shim() -> Iterator[None]:
    """``torch.eig(A, eigenvectors=True)`` (removed in PyTorch 2) for symmetric ``A``, during the ``with`` block."""

    def eig(matrix: Tensor, eigenvectors: bool = False) -> tuple[Tensor, Tensor]:
        values, vectors = torch.linalg.eigh(matrix)
        return torch.stack([values, torch.zeros_like(values)], dim=1), vectors

    original = torch.eig
    torch.eig = eig
    try:
        yield
    finally:
        torch.eig = original


@dataclass
class DensityAttempt:
    """What PyHessian's ``density()`` returned (Ritz nodes and weights per probe), or the error it raised."""

    nodes: list
    weights: list
    products: int
    error: str | None = None


def pyhessian_density(
    model: nn.Module, batches: Batches, device: torch.device, steps: int, probes: int, patched: bool
) -> DensityAttempt:
    """PyHessian's ``density(iter=steps, n_v=probes)``, with the ``torch.eig`` shim when ``patched``."""
    with _pyhessian_call(model):
        computer, count = _pyhessian(model, batches, device)
        try:
            with torch_eig_shim() if patched else contextlib.nullcontext():
                nodes, weights = computer.density(iter=steps, n_v=probes)
        except Exception as err:  # recorded in the report: what the peer does on today's PyTorch
            return DensityAttempt([], [], count[0], f"{type(err).__name__}: {err}")
    return DensityAttempt(nodes, weights, count[0])


# ---------------------------------------------------------------------------------------------------- curvlinops
def curvlinops_operator(model: nn.Module, batches: Batches, params: list[nn.Parameter] | None = None):
    """curvlinops' ``HessianLinearOperator`` (its defaults, determinism check included) and its product counter."""
    from curvlinops import HessianLinearOperator

    operator = HessianLinearOperator(model.eval(), nn.CrossEntropyLoss(), params or _trainable(model), list(batches))
    count = [0]
    matmat = operator._matmat

    def counted(M):
        count[0] += M[0].shape[-1]
        return matmat(M)

    operator._matmat = counted
    return operator, count


def curvlinops_top(model: nn.Module, batches: Batches, k: int, tol: float) -> EigenRun:
    """curvlinops 3 ``HessianLinearOperator(...).to_scipy()`` with scipy ``eigsh(k, which="LA", tol)``."""
    from scipy.sparse.linalg import eigsh

    operator, count = curvlinops_operator(model, batches)
    values, vectors = eigsh(operator.to_scipy(), k=k, which="LA", tol=tol)
    return EigenRun(values, torch.from_numpy(vectors), count[0])


def curvlinops_density(
    model: nn.Module,
    batches: Batches,
    steps: int,
    probes: int,
    boundaries: tuple[float, float] | None,
    params: list[nn.Parameter] | None = None,
):
    """curvlinops' ``lanczos_approximate_spectrum(ncv=steps, num_repeats=probes)``: (grid, density, products).
    ``boundaries=None`` lets it estimate the spectrum's ends with ``eigsh`` first (its default)."""
    from curvlinops import lanczos_approximate_spectrum

    operator, count = curvlinops_operator(model, batches, params)
    grid, density = lanczos_approximate_spectrum(operator, ncv=steps, num_repeats=probes, boundaries=boundaries)
    return grid, density, count[0]


# ---------------------------------------------------------------------------------------------------- hessian-eigenthings
def eigenthings_operator(model: nn.Module, batches: Batches, block: str | None = None):
    """hessian-eigenthings' ``HessianOperator`` (double-backward over the batches) and its product counter."""
    from hessian_eigenthings import HessianOperator, match_names, supervised_loss

    operator = HessianOperator(
        model.eval(),
        list(batches),
        supervised_loss(F.cross_entropy),
        param_filter=match_names(block) if block else None,
    )
    count = [0]
    matvec = operator.matvec

    def counted(v):
        count[0] += 1
        return matvec(v)

    operator.matvec = counted
    return operator, count


def eigenthings_top(model: nn.Module, batches: Batches, k: int, steps: int | None) -> EigenRun:
    """hessian-eigenthings' ``lanczos(k, which="LA")`` at ``steps`` Lanczos steps (None: its default, 2k)."""
    from hessian_eigenthings import lanczos

    operator, count = eigenthings_operator(model, batches)
    result = lanczos(operator, k=k, which="LA", max_iter=steps, seed=0)
    return EigenRun(result.eigenvalues.cpu().numpy().astype(float), result.eigenvectors.T, count[0])


def eigenthings_prefix_values(
    model: nn.Module, batches: Batches, k: int, max_steps: int
) -> tuple[dict[int, np.ndarray], int]:
    """The top-k Ritz values ``lanczos(k, which="LA", max_iter=m, seed=0)`` would return, for every m up to
    ``max_steps``, from two runs (its reorthogonalisation is on for m <= 50 and off above): an m-step run's
    tridiagonal is the leading m x m block of a longer run's from the same start. Also the products made."""
    from hessian_eigenthings import lanczos_tridiagonal

    operator, count = eigenthings_operator(model, batches)
    n = operator.size
    generator = torch.Generator(device="cpu").manual_seed(0)
    start = torch.randn(n, dtype=operator.dtype, generator=generator).to(operator.device)
    values = {}
    for reorthogonalize, lo, hi in ((True, k, min(50, max_steps, n)), (False, 51, min(max_steps, n))):
        if hi < lo:
            continue
        run = lanczos_tridiagonal(operator, start, hi, reorthogonalize=reorthogonalize)
        alphas, betas = run.alphas.double().cpu().numpy(), run.betas.double().cpu().numpy()
        for m in range(lo, min(hi, len(alphas)) + 1):
            T = np.diag(alphas[:m]) + np.diag(betas[: m - 1], 1) + np.diag(betas[: m - 1], -1)
            values[m] = np.sort(np.linalg.eigvalsh(T))[::-1][:k]
    return values, count[0]


def eigenthings_density(model: nn.Module, batches: Batches, steps: int, probes: int, block: str | None = None):
    """hessian-eigenthings' ``spectral_density(num_runs=probes, lanczos_steps=steps)``: (result, products)."""
    from hessian_eigenthings import spectral_density

    operator, count = eigenthings_operator(model, batches, block)
    return spectral_density(operator, num_runs=probes, lanczos_steps=steps, seed=0), count[0]
