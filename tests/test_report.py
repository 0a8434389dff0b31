"""`snakemake --report` of the tiny run, opened in a real browser (Debian's chromium, headless; installed by
tests/browser/setup.sh, which needs root, as CI has): the report opens on the workflow description with every
claim's verdict per seed as a table, and one click on a figure's link shows the figure."""

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO, TINY, snakemake
from hessian_spectra import layout
from hessian_spectra.report_pages import VERDICTS_TABLE_ID, seed_heading, seed_of, verdicts_figure

pytestmark = pytest.mark.slow
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium, installed as root if missing."""
    if shutil.which("chromium") is None:
        if os.geteuid() != 0:
            pytest.skip("needs Debian's chromium: run tests/browser/setup.sh as root (CI does)")
        subprocess.run(["bash", REPO / "tests" / "browser" / "setup.sh"], check=True, timeout=900)
    return shutil.which("chromium")


@pytest.fixture(scope="module")
def report(tiny_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    result = snakemake(tiny_run, "--report", str(out), configfile=TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def rendered(chromium: str, page: Path, profile: Path) -> str:
    """The page's DOM after its scripts ran (the report is a React app: its content exists only then)."""
    result = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=15000", "--dump-dom",
         page.as_uri()],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0 and "</html>" in result.stdout, result.stderr[-3000:]
    return result.stdout


class Tables(HTMLParser):
    """The text of every cell of the table with a given id, row by row (script and style text left out)."""

    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id, self.rows, self.depth, self.cell, self.skip = table_id, [], 0, None, 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self.skip += 1
        elif tag == "table" and (self.depth or dict(attrs).get("id") == self.table_id):
            self.depth += 1
        elif self.depth and tag == "tr":
            self.rows.append([])
        elif self.depth and tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self.skip -= 1
        elif tag == "table" and self.depth:
            self.depth -= 1
        elif self.depth and tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append(" ".join("".join(self.cell).split()))
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None and not self.skip:
            self.cell.append(data)


def test_the_report_opens_on_every_claims_verdict_per_seed(tiny_run, report, chromium, tmp_path):
    parser = Tables(VERDICTS_TABLE_ID)
    parser.feed(rendered(chromium, report, tmp_path / "profile"))
    header, *rows = parser.rows
    findings = pd.read_csv(tiny_run / layout.findings(), sep="\t", dtype=str, keep_default_na=False)
    seeds = list(dict.fromkeys(seed for seed in findings["seed"].map(seed_of) if seed is not None))
    assert header == ["source", "claim", *(seed_heading(seed) for seed in seeds)]
    shown = {(row[0].split()[1], row[1]): row[2:] for row in rows}
    assert len(rows) == len(shown) == len(findings.drop_duplicates(["study", "claim"]))
    for (study, claim), cells in shown.items():
        judged = findings[(findings["study"] == study) & (findings["claim"] == claim)]
        if judged["seed"].map(seed_of).isna().all():  # a study without runs: one cell across the seeds
            assert cells == [f"{judged['verdict'].iloc[0]}: {judged['why'].iloc[0]}"], claim
            continue
        verdicts = dict(zip(judged["seed"].map(seed_of), judged["verdict"]))
        assert cells == [verdicts.get(seed, "") for seed in seeds], claim  # empty: no run with that seed


def test_one_click_on_the_start_page_shows_a_figure(report, chromium, tmp_path):
    """A copy of the report clicks the start page's link to the verdicts picture once loaded: the content pane
    then shows that picture."""
    name = Path(verdicts_figure()).name
    click = ("<script>window.addEventListener('load', () => setTimeout(() => "
             f"document.querySelector('a[href*=\"{name}\"]').click(), 1000));</script></body>")
    head, _, tail = report.read_text().rpartition("</body>")
    page = tmp_path / "clicked.html"
    page.write_text(head + click + tail)
    dom = rendered(chromium, page, tmp_path / "profile")
    assert re.search(rf'<img src="data:image/png;[^"]*filename={re.escape(name)};base64,', dom)
