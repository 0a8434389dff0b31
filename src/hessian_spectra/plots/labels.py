"""Legend labels of runs (torch- and matplotlib-free): a short name, made unique only where two runs share it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable


def run_labels(
    runs: list[dict], name: Callable[[dict], str], panel: Callable[[dict], object] = lambda run: None
) -> list[str]:
    """``name(run)`` for every run, followed by the run's variant (and seed, where they differ) wherever two runs
    drawn in one ``panel`` share a name."""
    names = [name(run) for run in runs]
    counts = Counter((panel(run), label) for run, label in zip(runs, names))
    several_seeds = len({run["seed"] for run in runs}) > 1

    def detail(run: dict) -> str:
        return f"seed {run['seed']}, {run['variant']}" if several_seeds else run["variant"]

    return [
        label if counts[(panel(run), label)] == 1 else f"{label} ({detail(run)})" for label, run in zip(names, runs)
    ]
