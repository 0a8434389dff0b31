"""The README's verdict tables, rendered from a findings.tsv and the record of the run that made it, and written
between markers, so that no verdict in the README is ever typed by hand (torch-free)."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping

import pandas as pd

from hessian_spectra.findings import ALL_SEEDS

START, END = "<!-- findings:{name} start -->", "<!-- findings:{name} end -->"
RECORD_KEYS = ("config", "commit", "processor", "date")
CAPTION = "workflow/report/findings/findings.rst"
CAPTION_WIDTH = 116


def cell(text: object) -> str:
    """A table cell: pipes escaped, newlines flattened."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def row(cells: list[object]) -> str:
    """One Markdown table row of ``cells``."""
    return "| " + " | ".join(cell(c) for c in cells) + " |"


def source_text(value: object) -> str:
    """The source number as a table spells it: zero-padded to three digits."""
    return f"{int(value):03d}"


def caption(name: str, record: Mapping[str, str], seeds: list[str]) -> str:
    """The line above a table: which file, config, commit, machine and date it came from."""
    missing = [key for key in RECORD_KEYS if not record.get(key)]
    if missing:
        raise ValueError(f"docs/findings/{name}.json: missing {', '.join(missing)} (write it with "
                         f"`hessian-spectra findings-readme record`)")
    over = f"{len(seeds)} seeds ({', '.join(seeds)})" if len(seeds) > 1 else f"seed {seeds[0]}"
    return (f"Rendered by `hessian-spectra findings-readme render` from `docs/findings/{name}.tsv`: the "
            f"`{record['config']}` run's `findings.tsv` ({over}) at commit {record['commit']}, on {record['processor']}"
            f", {record['date']}.")


def render(name: str, table: pd.DataFrame, record: Mapping[str, str]) -> str:
    """The markdown of one config's scorecard: one row per claim; with several seeds the verdict on their means
    (which decides) beside each seed's verdict alone."""
    table = table.assign(seed=table["seed"].astype(str))
    seeds = [s for s in dict.fromkeys(table["seed"]) if s != ALL_SEEDS]
    lines = [caption(name, record, seeds), ""]
    if len(seeds) == 1:
        lines += [row(["source", "claim", "value", "verdict", "why"]), row(["---"] * 5)]
        for r in table.itertuples():
            lines.append(row([source_text(r.source), r.claim, r.value, f"**{r.verdict}**", r.why]))
        return "\n".join(lines)
    lines += [row(["source", "claim", f"verdict over seeds {', '.join(seeds)}", "each seed alone", "why (over seeds)"]),
              row(["---"] * 5)]
    for claim, rows in table.groupby("claim", sort=False):
        by_seed = rows.set_index("seed")
        pooled = by_seed.loc[ALL_SEEDS]
        alone = " / ".join(by_seed.loc[s, "verdict"] for s in seeds)
        lines.append(row([source_text(pooled["source"]), claim, f"**{pooled['verdict']}**", alone, pooled["why"]]))
    return "\n".join(lines)


def place(readme: str, name: str, text: str) -> str:
    """``readme`` with ``text`` between the markers named ``name`` (each on a line of its own)."""
    start, end = START.format(name=name), END.format(name=name)
    pattern = re.compile(rf"^{re.escape(start)}\n.*?^{re.escape(end)}$", re.S | re.M)
    if len(pattern.findall(readme)) != 1:
        raise ValueError(f"README: needs exactly one block from '{start}' to '{end}', each on its own line")
    return pattern.sub(lambda _: f"{start}\n{text}\n{end}", readme)


def report_caption() -> str:
    """The report page of ``findings.tsv``: what its columns are, the rule of errors, and every claim's rule."""
    from hessian_spectra.findings import ERRORS, NOT_RUN
    from hessian_spectra.studies import built_in

    def rst(text: str) -> str:
        return text.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*")

    lines = [
        "The findings scorecard: every claim of the five sources checked against this config's runs and tables, one "
        "row per claim and training seed and, with several seeds, one more on their means (seed ``all``), which "
        "decides. "
        "``metric`` says what is computed, ``value`` its numbers with their standard errors, ``verdict`` holds / does "
        "not hold / inconclusive by the ``rule`` stated in the row, and ``why`` the numbers behind the verdict; an "
        "inconclusive ``why`` says which number would have to change. Runs that diverged (training loss not finite or "
        "above its start) or did not learn (final accuracy below twice chance) never count as evidence, and neither do "
        f"unconverged estimates. A study the config does not run: \"{NOT_RUN}\".",
        "",
        rst(ERRORS),
        "",
        "Each claim's rule:",
        "",
    ]
    for study, claim in ((study, claim) for study in built_in() for claim in study.claims):
        lines.append(f"- **{study.source} {claim.study}: {rst(claim.claim)}.** Computed: {rst(claim.metric)}. "
                     f"Rule: {rst(claim.rule)}.")
    wrapped = [textwrap.fill(line, CAPTION_WIDTH, subsequent_indent="  " if line.startswith("- ") else "",
                             break_on_hyphens=False, break_long_words=False) for line in lines]
    return "\n".join(wrapped) + "\n"
