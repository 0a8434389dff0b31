"""Section 5: the default run's wall time by rule, from the rules' ``benchmark:`` files, and its start-up share."""

from __future__ import annotations

import datetime
import re
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd

from benchmarks.fixtures import REPO
from benchmarks.report import Section, table
from hessian_spectra import layout
from hessian_spectra.layout import RUN_PATTERN

# What a compute job imports before it computes (the CLI, then the library's training and curvature modules).
JOB_IMPORTS = (
    "import sys, hessian_spectra.cli, hessian_spectra.runtime, hessian_spectra.checkpoint, "
    "hessian_spectra.spectrum, hessian_spectra.train.loop; print(int('torchvision' in sys.modules))"
)
JOB_STARTUP = "a job's imports (CLI, training, curvature)"
STARTUPS = {
    "python, no imports": "pass",
    "import torch": "import torch",
    "import torch, torchvision": "import torch, torchvision",
    JOB_STARTUP: JOB_IMPORTS,
}
LOG_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]", re.M)


def startup_seconds(rounds: int) -> tuple[dict[str, float], bool]:
    """Median wall seconds of a fresh interpreter running each snippet; and whether a job imports torchvision."""
    results, torchvision = {}, False
    for label, code in STARTUPS.items():
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            times.append(time.perf_counter() - start)
        results[label] = statistics.median(times)
        if code is JOB_IMPORTS:
            torchvision = done.stdout.strip() == "1"
    return results, torchvision


def _template_regex(name: str) -> str:
    """A per-run job's benchmark name (``{epoch}``-like wildcards in it) as a regex of the file paths it produces."""
    template = layout.benchmark(f"{RUN_PATTERN}/{name}")
    return re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template))


def rule_patterns(rules_dir: Path) -> list[tuple[str, re.Pattern]]:
    """(rule, path regex) of every per-run job: the training rules of the rule files, one per epoch count
    (``train_{N}_epochs``), as ``train``; each study's per-run jobs from the study registry, as ``<study>_<job>``."""
    from hessian_spectra.studies import built_in

    patterns = []
    for path in sorted(rules_dir.glob("*.smk")):
        for block in re.split(r"^(?=\s*rule(?: \w+)?:)", path.read_text(), flags=re.M):
            rule = re.search(r"name:\s*f?\"(train)_", block)
            bench = re.search(r"benchmark:\s*run_benchmark\(\"([^\"]+)\"\)", block)
            if rule and bench:
                patterns.append((rule.group(1), re.compile(_template_regex(bench.group(1)))))
    patterns += [(f"{study.name}_{job.name}", re.compile(_template_regex(job.log)))
                 for study in built_in() for job in study.jobs]
    return patterns


def rule_times(results: Path, patterns: list[tuple[str, re.Pattern]]) -> dict[str, list[tuple[float, float]]]:
    """Per rule, (seconds, max RSS MB) of every job whose benchmark file lies under ``results/benchmarks``."""
    jobs: dict[str, list[tuple[float, float]]] = defaultdict(list)
    root = results / "benchmarks"
    for path in sorted(root.rglob("*.tsv")):
        relative = "results/benchmarks/" + path.relative_to(root).as_posix()
        rule = next((name for name, regex in patterns if regex.fullmatch(relative)), f"(no rule) {path.stem}")
        frame = pd.read_csv(path, sep="\t")
        jobs[rule].append((float(frame["s"].mean()), float(frame["max_rss"].max())))
    return dict(jobs)


def _log_span(results: Path) -> str | None:
    """First-to-last timestamp of the newest Snakemake log beside ``results``, if there is one."""
    logs = sorted((results.parent / ".snakemake" / "log").glob("*.snakemake.log"), key=lambda p: p.stat().st_mtime)
    if not logs:
        return None
    stamps = [datetime.datetime.strptime(s, "%a %b %d %H:%M:%S %Y") for s in LOG_STAMP.findall(logs[-1].read_text())]
    if len(stamps) < 2:
        return None
    return f"{(stamps[-1] - stamps[0]).total_seconds():.0f} s from first to last timestamp of {logs[-1].name}"


def workflow_section(results: Path, rounds: int) -> Section:
    """Start-up costs measured here, and the default run's per-rule times read from ``results``."""
    section = Section("5. The default run")
    startups, torchvision = startup_seconds(rounds)
    job_startup = startups[JOB_STARTUP]
    section.lines += [
        f"Process start-up measured here (fresh interpreter, median of {rounds}):",
        "",
        *table(["process", "seconds"], [[label, f"{seconds:.2f}"] for label, seconds in startups.items()]),
        f"A job's imports pull in torchvision: {'yes' if torchvision else 'no'}.",
        "",
    ]
    if not (results / "benchmarks").is_dir():
        section.lines.append(
            f"No `{results}/benchmarks` directory: run the default workflow first "
            "(`.venv/bin/snakemake --cores 2`), then this harness, to fill this section."
        )
        return section
    jobs = rule_times(results, rule_patterns(REPO / "workflow" / "rules"))
    rows = []
    total_s = total_jobs = 0
    for rule, entries in sorted(jobs.items(), key=lambda item: -sum(s for s, _ in item[1])):
        seconds = [s for s, _ in entries]
        total = sum(seconds)
        total_s, total_jobs = total_s + total, total_jobs + len(entries)
        rows.append(
            [
                rule,
                len(entries),
                f"{total:.1f}",
                f"{total / len(entries):.1f}",
                f"{max(seconds):.1f}",
                f"{max(rss for _, rss in entries):.0f}",
                f"{100 * min(1.0, len(entries) * job_startup / total):.0f}%",
            ]
        )
    rows.append(
        [
            "**all rules with benchmark files**",
            total_jobs,
            f"{total_s:.1f}",
            "",
            "",
            "",
            f"{100 * min(1.0, total_jobs * job_startup / total_s):.0f}%" if total_s else "-",
        ]
    )
    span = _log_span(results)
    section.lines += [
        f"Jobs of `{results}` by rule, from their `benchmark:` files (Snakemake's `s`: each job's wall time). "
        f"*start-up share* = jobs x {job_startup:.2f} s (a job's imports, above) / the rule's total.",
        "",
        *table(["rule", "jobs", "total s", "mean s", "max s", "max RSS MB", "start-up share"], rows),
        f"- Wall time of the whole run: {span}." if span else "- No Snakemake log found for the whole run's wall time.",
        "- Rules without a `benchmark:` directive (figures, tables, downloads) are not in this table.",
    ]
    return section
