"""The report's own pages: study tables and the scorecard as HTML exactly as written, the verdicts at a glance
(a coloured cell per claim and seed, empty where a claim has no row for a seed) and as a picture."""

import subprocess
import sys

import pandas as pd
import pytest

from hessian_spectra import layout
from hessian_spectra.findings import COLUMNS
from hessian_spectra.report_pages import (
    VERDICT_COLOURS,
    read_text_table,
    scorecard_html,
    scorecard_page,
    table_html,
    table_page,
    verdicts_figure,
    verdicts_html,
    verdicts_page,
)


@pytest.fixture
def scorecard(tmp_path):
    """Claims of three studies: one judged on seeds 0 and 1 and on their means (seed ``all``), one on seed 0 only,
    one on none (its study has no run); text that needs escaping."""
    rows = [
        {"study": "init_chain_rule", "source": "003", "seed": 0, "claim": "a < b", "verdict": "holds"},
        {"study": "init_chain_rule", "source": "003", "seed": 1, "claim": "a < b", "verdict": "does not hold"},
        {"study": "init_chain_rule", "source": "003", "seed": "all", "claim": "a < b", "verdict": "inconclusive"},
        {"study": "large_batch", "source": "000", "seed": 0, "claim": "c & d", "verdict": "inconclusive"},
        {"study": "hessianflow", "source": "002", "seed": None, "claim": "e", "verdict": "inconclusive",
         "why": "study not run"},
    ]
    table = pd.DataFrame([{**{column: "x" for column in COLUMNS}, **row} for row in rows])[list(COLUMNS)]
    path = tmp_path / "findings.tsv"
    table.to_csv(path, sep="\t", index=False)
    return path


def test_pages_live_under_the_configs_root():
    assert table_page("large_batch", "top_eigenvalues.tsv") == "results/report/large_batch/top_eigenvalues.html"
    assert scorecard_page("paper") == "results/configs/paper/report/findings/scorecard.html"
    assert verdicts_page() == "results/report/findings/verdicts.html"
    assert verdicts_figure("paper") == layout.figure("findings", "verdicts.png", "paper")


def test_verdicts_table_has_a_coloured_cell_per_claim_and_seed(scorecard):
    text = verdicts_html(read_text_table(scorecard))
    assert "<th>source</th><th>claim</th><th>seed 0</th><th>seed 1</th><th>all seeds (decides)</th>" in text
    rows = text.split("<tr>")[2:]
    assert len(rows) == 3
    assert "003 init_chain_rule</td><td>a &lt; b</td>" in rows[0]
    assert f'background:{VERDICT_COLOURS["holds"]}' in rows[0] and ">does not hold</td>" in rows[0]
    assert rows[0].endswith(">inconclusive</td></tr>\n")
    assert "000 large_batch</td><td>c &amp; d</td>" in rows[1] and "inconclusive</td><td></td><td></td></tr>" in rows[1]
    assert 'colspan="3" style="background:#bdbdbd;color:#000">inconclusive: study not run</td></tr>' in rows[2]


def test_tables_are_shown_as_written(tmp_path, scorecard):
    table = tmp_path / "sharpness_table.csv"
    table.write_text("run,value,converged\nr1,0.30000000000000004,true\nr2,nan,\n")
    page = table_html(table)
    assert "<td>0.30000000000000004</td><td>true</td>" in page and "<td>nan</td><td></td>" in page
    assert "3 rows" not in page and "2 rows" in page
    whole = scorecard_html(read_text_table(scorecard), scorecard)
    assert whole.count("<tr>") == 1 + 3 + 1 + 5  # the glance (header, 3 claims), every row (header, 5 rows)


def _report(*args, cwd):
    return subprocess.run([sys.executable, "-m", "hessian_spectra", "report", *args], capture_output=True, text=True,
                          cwd=cwd)


def test_the_command_writes_the_pages_and_the_picture(tmp_path, scorecard):
    outputs = {name: tmp_path / "out" / name for name in ("scorecard.html", "verdicts.html", "verdicts.png")}
    done = _report("scorecard", "--findings", str(scorecard), "--page", str(outputs["scorecard.html"]),
                   "--verdicts", str(outputs["verdicts.html"]), "--figure", str(outputs["verdicts.png"]), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert outputs["verdicts.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert outputs["verdicts.html"].read_text() == verdicts_html(read_text_table(scorecard))


def test_a_file_that_is_no_scorecard_stops_with_one_line_and_writes_nothing(tmp_path):
    bad = tmp_path / "findings.tsv"
    bad.write_text("study\tclaim\nx\ty\n")
    out = tmp_path / "out"
    done = _report("scorecard", "--findings", str(bad), "--page", str(out / "a.html"), "--verdicts",
                   str(out / "b.html"), "--figure", str(out / "c.png"), cwd=tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and f"--findings {bad}: not a findings scorecard" in lines[0]
    assert not out.exists()
