"""Markdown pieces of the report: tables, sections, the run's header, and targets with their verdicts."""

from __future__ import annotations

import datetime
import math
import os
import platform
import sys
from dataclasses import dataclass, field
from importlib import metadata

import torch

PEERS = ("PyHessian", "curvlinops-for-pytorch", "hessian-eigenthings")


@dataclass
class Target:
    """A goal on one measured number: ``value <= limit`` (``kind="max"``), ``value >= limit`` (``"min"``), or
    ``limit[0] <= value <= limit[1]`` (``"range"``)."""

    name: str
    value: float
    limit: float | tuple[float, float]
    kind: str = "max"
    unit: str = "x"

    @property
    def met(self) -> bool:
        """Whether the measured value meets the target (never when it was not measured)."""
        if math.isnan(self.value):
            return False
        if self.kind == "max":
            return self.value <= self.limit
        if self.kind == "min":
            return self.value >= self.limit
        lo, hi = self.limit
        return lo <= self.value <= hi

    def wanted(self) -> str:
        """The target in words, e.g. ``<= 2x``."""
        if self.kind == "max":
            return f"<= {self.limit:g}{self.unit}"
        if self.kind == "min":
            return f">= {self.limit:g}{self.unit}"
        return f"{self.limit[0]:g} to {self.limit[1]:g}"

    def verdict(self) -> str:
        """``met``, ``not measured``, or how far the value misses the target."""
        if math.isnan(self.value):
            return "not measured"
        if self.met:
            return "met"
        if self.kind == "max":
            gap = self.value - self.limit
            return f"missed by {gap:.3g}{self.unit} ({100 * gap / self.limit:.0f}% over)"
        if self.kind == "min":
            return f"missed by {self.limit / self.value:.3g}x (reached {self.value:.3g}{self.unit})"
        lo, hi = self.limit
        gap = lo - self.value if self.value < lo else self.value - hi
        return f"missed by {gap:.3g}"


@dataclass
class Section:
    """One numbered section of the report: markdown lines and the targets it checks."""

    title: str
    lines: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)

    def markdown(self) -> str:
        """The section as Markdown: its title as a heading, then its lines."""
        return "\n".join([f"## {self.title}", "", *self.lines]).rstrip() + "\n"


def table(headers: list[str], rows: list[list[object]]) -> list[str]:
    """A markdown table (cells converted with ``str``) followed by a blank line."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return [*lines, ""]


def fmt(value: float, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits ("-" for NaN)."""
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}g}"


def fmt_values(values) -> str:
    """Eigenvalues at 7 significant digits, comma separated (the smoke test reads these back)."""
    return ", ".join(f"{float(v):.7g}" for v in values)


def megabytes(nbytes: float) -> str:
    """``nbytes`` in MiB, one decimal."""
    return f"{nbytes / 2**20:.1f}"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _loads(loads: tuple[float, ...]) -> str:
    return ", ".join(f"{load:.2f}" for load in loads)


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def header(
    label: str, device: torch.device, argv: list[str], seconds: float, load_at_start: tuple[float, ...]
) -> list[str]:
    """Title and the run's circumstances: machine, threads, versions, date, command, the machine's load."""
    machine = f"{_cpu_name()}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}"
    if device.type == "cuda":
        machine += f"; GPU {torch.cuda.get_device_name(device)}"
    peers = ", ".join(f"{name} {_version(name)}" for name in PEERS)
    rows = [
        ["machine", machine],
        ["device", str(device)],
        ["torch threads", torch.get_num_threads()],
        ["torch", torch.__version__],
        ["python", sys.version.split()[0]],
        ["peers", peers],
        ["date (UTC)", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")],
        ["size", label],
        ["command", "`" + " ".join(["python", *argv]) + "`"],
        ["harness wall time", f"{seconds:.0f} s"],
        ["load average (1, 5, 15 min) at start; at end", f"{_loads(load_at_start)}; {_loads(os.getloadavg())}"],
    ]
    return [
        "# Benchmarks: the curvature engine against PyHessian, curvlinops and hessian-eigenthings",
        "",
        *table(["", ""], rows),
    ]


def targets_table(sections: list[Section]) -> list[str]:
    """The Markdown table of every section's targets: value, wanted, verdict."""
    rows = [
        [
            target.name,
            f"{fmt(target.value)}{target.unit if target.kind != 'range' else ''}",
            target.wanted(),
            target.verdict(),
        ]
        for section in sections
        for target in section.targets
    ]
    return ["## Targets", "", *table(["target", "measured", "wanted", "verdict"], rows)]
