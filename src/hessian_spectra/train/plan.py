"""Planning of training: one training rule per epoch count, constrained to the variants of its runs."""

from __future__ import annotations

from collections.abc import Iterable

from hessian_spectra.runs import ConfigError


def variants_by_epochs(runs: Iterable[dict]) -> dict[int, list[str]]:
    """Epoch count -> the sorted variant names of the planned ``runs`` that train that many epochs (counts
    ascending); a variant name whose runs train for different numbers of epochs raises ``ConfigError``."""
    epochs_of: dict[str, set[int]] = {}
    for run in runs:
        epochs_of.setdefault(run["variant"], set()).add(run["epochs"])
    shared = sorted(name for name, counts in epochs_of.items() if len(counts) > 1)
    if shared:
        raise ConfigError(
            f"runs named {', '.join(shared)} train for different numbers of epochs; give them distinct `name`s"
        )
    return {
        epochs: sorted(name for name, (count,) in epochs_of.items() if count == epochs)
        for epochs in sorted({count for counts in epochs_of.values() for count in counts})
    }
