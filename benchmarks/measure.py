"""Timing, peak memory and FLOP counts of one call, and interleaved repetitions for ratios under load."""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA only), so that a timing includes it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    """Wall seconds of ``fn()`` (device work included) and its result."""
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return time.perf_counter() - start, result


def interleaved(
    fns: dict[str, Callable[[], Any]], rounds: int, device: torch.device, warm_up: bool = True
) -> dict[str, list[float]]:
    """Seconds of every function in each of ``rounds`` rounds, after one warm-up call each if ``warm_up``.

    The functions alternate within a round (forward, then reversed order in the next round), so a change in the
    machine's load hits all of them alike and per-round ratios cancel it."""
    for fn in fns.values() if warm_up else ():
        timed(fn, device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(rounds):
        for name in list(fns) if r % 2 == 0 else list(reversed(fns)):
            times[name].append(timed(fns[name], device)[0])
    return times


def median_ratio(times: dict[str, list[float]], name: str, base: str) -> float:
    """Median over rounds of ``times[name] / times[base]``."""
    return statistics.median(a / b for a, b in zip(times[name], times[base]))


def memory(fn: Callable[[], Any], device: torch.device) -> tuple[int, int]:
    """(peak, retained) bytes allocated on ``device`` by ``fn()`` above what was allocated before; retained
    counts what is still allocated after it returned, its result included (e.g. a cache it built).

    CUDA: the caching allocator's statistics; CPU: the running sum of the profiler's allocation events."""
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        result = fn()
        synchronize(device)
        retained = torch.cuda.memory_allocated(device) - before
        del result
        return torch.cuda.max_memory_allocated(device) - before, retained
    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _stderr_muted():
        prof.start()
    result = fn()
    with _stderr_muted():
        prof.stop()
    del result
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    current = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        if event.device_type() == DeviceType.CPU:
            current += event.nbytes()
            peak = max(peak, current)
    return peak, current


@contextlib.contextmanager
def _stderr_muted():
    """Silence file descriptor 2 (the profiler's C++ start/stop lines) for the ``with`` block."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def flops(fn: Callable[[], Any]) -> int:
    """Floating-point operations of ``fn()`` as ``torch.utils.flop_counter`` counts them (matmuls and convolutions,
    forward- and reverse-mode alike): independent of the machine's load."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()
