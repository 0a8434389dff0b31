"""The README's verdict tables and the report's rule page are generated, never typed: they equal what
`hessian-spectra findings-readme render` makes from the kept scorecards in docs/findings and the claims' rules."""

import json

import pandas as pd
import pytest

from conftest import REPO
from hessian_spectra import cli
from hessian_spectra.findings.render import CAPTION, END, START, place, render, report_caption
from hessian_spectra.studies import built_in
from hessian_spectra.tables import read_table, write_table

CLAIMS = [claim for study in built_in() for claim in study.claims]
SOURCES = {study.name: study.source for study in built_in()}
RECORD = {"config": "config.yaml", "commit": "abc1234", "processor": "AMD EPYC, 2 logical cores", "date": "2026-12-06"}


def scorecard(seeds):
    """A scorecard of every claim over ``seeds`` (with an ``all`` row when there are several)."""
    rows = []
    for claim in CLAIMS:
        for seed in seeds + (["all"] if len(seeds) > 1 else []):
            rows.append({"study": claim.study, "source": SOURCES[claim.study], "seed": seed, "claim": claim.claim,
                         "metric": claim.metric, "value": "||H||_F 1 +- 0.1", "rule": claim.rule,
                         "verdict": "holds" if seed != 1 else "inconclusive", "why": f"seed {seed} why"})
    return pd.DataFrame(rows)


def test_the_readme_tables_and_the_rule_page_are_up_to_date():
    assert cli.main(["findings-readme", "render", "--check", "--readme", str(REPO / "README.md"),
                     "--docs", str(REPO / "docs/findings"), "--caption", str(REPO / CAPTION)]) == 0
    assert (REPO / CAPTION).read_text() == report_caption()
    kept = sorted(p.stem for p in (REPO / "docs/findings").glob("*.tsv"))
    readme = (REPO / "README.md").read_text()
    assert "default" in kept and all(START.format(name=name) in readme for name in kept)


def test_one_seed_renders_one_row_per_claim_with_pipes_escaped():
    text = render("default", scorecard([0]), RECORD)
    lines = text.splitlines()
    assert lines[0].startswith("Rendered by `hessian-spectra findings-readme render` from `docs/findings/default.tsv`")
    assert "at commit abc1234, on AMD EPYC, 2 logical cores, 2026-12-06" in lines[0]
    assert lines[2] == "| source | claim | value | verdict | why |" and len(lines) == 4 + len(CLAIMS)
    assert lines[4].startswith("| 000 | at convergence") and "\\|\\|H\\|\\|_F 1 +- 0.1 | **holds** |" in lines[4]


def test_several_seeds_render_the_verdict_on_their_means_beside_each_seed():
    lines = render("cpu", scorecard([0, 1, 2]), RECORD).splitlines()
    assert "3 seeds (0, 1, 2)" in lines[0]
    assert lines[2] == "| source | claim | verdict over seeds 0, 1, 2 | each seed alone | why (over seeds) |"
    assert lines[4].endswith("| **holds** | holds / inconclusive / holds | seed all why |")


def test_place_writes_between_markers_and_refuses_missing_ones():
    readme = f"intro\n{START.format(name='x')}\nold\n{END.format(name='x')}\nrest\n"
    start, end = START.format(name="x"), END.format(name="x")
    assert place(readme, "x", "new\ntable") == f"intro\n{start}\nnew\ntable\n{end}\nrest\n"
    with pytest.raises(ValueError, match="needs exactly one block from '<!-- findings:y start -->'"):
        place(readme, "y", "new")


def test_record_then_render(tmp_path, monkeypatch):
    """record keeps the scorecard with its commit, processor and date; render writes it into the README."""
    findings = tmp_path / "findings.tsv"
    write_table(scorecard([0]), findings)
    docs = tmp_path / "docs"
    monkeypatch.chdir(REPO)  # a git checkout, for the commit
    assert cli.main(["findings-readme", "record", "--findings", str(findings), "--name", "default",
                     "--config", "config.yaml", "--docs", str(docs)]) == 0
    record = json.loads((docs / "default.json").read_text())
    assert record["config"] == "config.yaml" and len(record["commit"].split("+")[0]) >= 7
    assert "logical cores" in record["processor"] and record["date"].count("-") == 2
    assert read_table(docs / "default.tsv").equals(read_table(findings))
    readme, caption = tmp_path / "README.md", tmp_path / "findings.rst"
    readme.write_text(f"# x\n{START.format(name='default')}\n{END.format(name='default')}\n")
    args = ["findings-readme", "render", "--readme", str(readme), "--docs", str(docs), "--caption", str(caption)]
    assert cli.main([*args, "--check"]) == 2  # out of date: nothing written
    assert cli.main(args) == 0
    assert "| 000 | at convergence the top Hessian eigenvalues" in readme.read_text()
    assert caption.read_text() == report_caption()
    assert cli.main([*args, "--check"]) == 0


def test_a_kept_scorecard_without_its_record_is_refused(tmp_path, caplog):
    write_table(scorecard([0]), tmp_path / "default.tsv")
    readme = tmp_path / "README.md"
    readme.write_text("x\n")
    assert cli.main(["findings-readme", "render", "--readme", str(readme), "--docs", str(tmp_path)]) == 2
    assert "default.json: the record of" in caplog.text


def test_the_rule_page_states_every_rule():
    caption = " ".join(report_caption().split())
    for claim in CLAIMS:
        assert " ".join(claim.rule.replace("|", "\\|").split()) in caption
