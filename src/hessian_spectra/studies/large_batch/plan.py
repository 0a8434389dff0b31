"""Planning of study `large_batch`: its run keys by batch size and its figure names."""

from __future__ import annotations

from dataclasses import dataclass

from hessian_spectra import layout
from hessian_spectra.inputs import config_entry

SPECTRAL_FIGURE = "hessian_spectral.png"


@dataclass(frozen=True)
class LargeBatchPlan:
    """The study's run keys by batch size (as a string, as in wildcards; sizes ascending, keys in config order)."""

    by_size: dict[str, list[str]]

    def figures(self) -> list[str]:
        """File names of every figure of the study: the spectral figure, then one loss surface per batch size."""
        return [SPECTRAL_FIGURE] + [surface_figure(size) for size in self.by_size]

    def surface_runs(self, batch_size: str, config: str = "") -> list[str]:
        """The run keys of the loss-surface figure of ``batch_size`` in the config named ``config``; a size the
        config does not train raises ValueError naming the figure and the sizes it does."""
        target = layout.figure("large_batch", surface_figure(batch_size), config)
        return config_entry(self.by_size, batch_size, target, "batch size", "this config's large_batch runs")


def surface_figure(batch_size: int | str) -> str:
    """File name of the loss-surface figure of one batch size (or a pattern such as ``{batch_size}``)."""
    return f"loss_surface_bs{batch_size}.png"


def plan(runs: list[dict]) -> LargeBatchPlan:
    """The study's planned ``runs`` grouped by batch size."""
    return LargeBatchPlan(
        by_size={
            str(size): [run["key"] for run in runs if run["batch_size"] == size]
            for size in sorted({run["batch_size"] for run in runs})
        }
    )
