"""The Hessian chain rule split, H = G + C, and what study ``init_chain_rule`` tracks at one checkpoint.

G = J^T (D^2_z L) J is the Gauss-Newton ("linearisation") term and C = sum_k (dL/dz_k) D^2_w z_k the curvature
term. C is not formed as H - G: it is the Hessian of <stop_grad(dL/dz), z(w)>, one Hessian product with no
cancellation, so it is exactly zero where the network is piecewise linear in the block (a ReLU network's
first layer) rather than rounding noise that Lanczos cannot converge on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hessian_spectra.curvature import CurvatureOperator, eval_mode, frobenius, lanczos
from hessian_spectra.curvature.operator import Batch, LossFn
from hessian_spectra.spectrum import ROW_COLUMNS, result_row, stream_seed
from hessian_spectra.tables import FULL

TERMS = ("H", "G", "H_minus_G")
COLUMNS = ROW_COLUMNS

# Every term, block and checkpoint draws its own probes (the stream is keyed by all three), so the errors of
# a curve's points, and of two terms, are independent.
_STREAMS = {"frobenius": 1, "top_eig": 2}


def curvature_term_loss(loss_fn: LossFn | None = None) -> LossFn:
    """A loss whose Hessian through the model is the chain rule's curvature term: <stop_grad(dL/dz), z>."""
    loss_fn = loss_fn or F.cross_entropy

    def term(outputs: Tensor, targets: Tensor) -> Tensor:
        weights = torch.func.grad(loss_fn)(outputs.detach(), targets)
        return (weights * outputs).sum()

    return term


def chain_rule_operators(
    model: nn.Module,
    batches: Sequence[Batch],
    params: Sequence[str] | None = None,
    *,
    l2: float = 0.0,
    loss_fn: LossFn | None = None,
    dtype: torch.dtype | None = None,
    mode: str = "cached",
    check_determinism: bool = True,
) -> dict[str, CurvatureOperator]:
    """Operators of H, G and H - G (= C) on ``params`` (default: all), with ``mode`` products; the L2 term
    ``l2 * I`` goes into H and G."""
    common = dict(params=params, dtype=dtype, mode=mode, check_determinism=check_determinism)
    return {
        "H": CurvatureOperator(model, batches, loss_fn=loss_fn, curvature="hessian", l2=l2, **common),
        "G": CurvatureOperator(model, batches, loss_fn=loss_fn, curvature="ggn", l2=l2, **common),
        "H_minus_G": CurvatureOperator(model, batches, loss_fn=curvature_term_loss(loss_fn), **common),
    }


def average_loss(model: nn.Module, batches: Sequence[Batch], loss_fn: LossFn | None = None) -> float:
    """The loss averaged exactly over all samples of ``batches`` (weights n_b / N), in eval mode."""
    loss_fn = loss_fn or F.cross_entropy
    total, count = 0.0, 0
    with eval_mode(model), torch.no_grad():
        for x, y in batches:
            total += float(loss_fn(model(x), y)) * len(x)
            count += len(x)
    return total / count


@dataclass
class TrackingRequest:
    """What to compute at each checkpoint; ``block`` names the parameter whose Hessian block is tracked,
    ``products`` the operators' product kind."""

    block: str = "dense1.weight"
    frobenius_probes: int = 30
    top_k: int = 1
    tol: float = 1e-4
    max_steps: int = 100
    seed: int = 0
    products: str = "cached"


def block_label(param: str) -> str:
    """The block's name in tables and figures: its module (``dense1.weight`` -> ``dense1``)."""
    return param.removesuffix(".weight")


def track_checkpoint(
    model: nn.Module,
    batches: Sequence[Batch],
    request: TrackingRequest,
    *,
    l2: float = 0.0,
    check_determinism: bool = True,
    epoch: int = 0,
) -> list[dict]:
    """Rows (``COLUMNS``) of checkpoint ``epoch``: the loss, and for the tracked block and the full Hessian the
    Frobenius norm (with its probes and standard error) and top-k eigenvalues (with relative residuals, tolerance
    and converged flags) of H, G, H - G."""
    rows = [result_row(FULL, "loss", 0, average_loss(model, batches))]
    for b, (block, params) in enumerate(((block_label(request.block), [request.block]), (FULL, None))):
        ops = chain_rule_operators(
            model, batches, params, l2=l2, mode=request.products, check_determinism=check_determinism
        )
        for t, (term, op) in enumerate(ops.items()):
            keys = (b, t, epoch)
            est = frobenius(op, request.frobenius_probes, seed=stream_seed(request.seed, _STREAMS["frobenius"], *keys))
            rows.append(
                result_row(
                    block,
                    f"frobenius_{term}",
                    0,
                    est.value,
                    stderr=est.stderr,
                    probes=request.frobenius_probes,
                    products=est.products,
                )
            )
            res = lanczos(
                op,
                k=request.top_k,
                tol=request.tol,
                max_steps=request.max_steps,
                seed=stream_seed(request.seed, _STREAMS["top_eig"], *keys),
                check_every=1,  # top-k of a few: a convergence check costs far less than a product
            )
            for i, (value, residual) in enumerate(zip(res.eigenvalues, res.residuals), start=1):
                if not math.isnan(value):
                    row = result_row(
                        block, f"top_eig_{term}", i, value, residual=residual, tolerance=request.tol,
                        products=res.products,
                    )
                    rows.append(row)
            op.cache.clear()  # the next term's operator builds its own graphs
    return rows
