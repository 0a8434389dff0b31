"""Section 4: one spectrum job's time as the Hessian subset grows, per model, and its log-log slope."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from benchmarks.fixtures import hessian_batches, num_params
from benchmarks.measure import timed
from benchmarks.report import Section, Target, fmt, table
from benchmarks.sizes import Sizes
from hessian_spectra.spectrum import SpectrumRequest, compute_spectrum

SLOPE_TARGET = (0.9, 1.1)


def scaling_section(models: dict[str, nn.Module], sizes: Sizes, device: torch.device) -> Section:
    """Time ``compute_spectrum`` (operator with its determinism check, then SLQ) at every subset size."""
    section = Section("4. Scaling with the Hessian subset and across models")
    request = SpectrumRequest(density_steps=sizes.scaling_steps, density_probes=sizes.scaling_probes)
    samples = np.array(sizes.scaling_samples, dtype=float)
    rows = []
    for name, model in models.items():
        warm = hessian_batches(sizes.scaling_samples[0], sizes.batch_size, device)
        compute_spectrum(model, warm, request)
        seconds = []
        for n in sizes.scaling_samples:
            batches = hessian_batches(n, sizes.batch_size, device)
            seconds.append(timed(lambda: compute_spectrum(model, batches, request), device)[0])
        slope = float(np.polyfit(np.log(samples), np.log(seconds), 1)[0])
        per_sample = 1e6 * seconds[-1] / samples[-1]
        rows.append([name, f"{num_params(model):,}", *(fmt(s) for s in seconds), f"{per_sample:.0f}", f"{slope:.3f}"])
        section.targets.append(
            Target(f"log-log slope of job time in samples ({name})", slope, SLOPE_TARGET, kind="range", unit="")
        )
    sizes_label = [f"{n:,} samples (s)" for n in sizes.scaling_samples]
    section.lines += [
        "One spectrum job = `hessian_spectra.spectrum.compute_spectrum` with "
        f"`density_steps={sizes.scaling_steps}, density_probes={sizes.scaling_probes}` (building the operator, its "
        f"determinism check, SLQ, smoothing), in this process after one warm-up job, batches of {sizes.batch_size}. "
        "Subsets beyond the 1,437 digits training images are filled with seeded shifted copies. The slope is the "
        "least-squares fit of log(time) on log(samples); 1 is linear.",
        "",
        *table(["model", "parameters", *sizes_label, "us per sample (largest)", "log-log slope"], rows),
    ]
    return section
