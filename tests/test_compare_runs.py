"""benchmarks/compare_runs.py on two small results folders: every difference reported by kind, tables present in
one folder only listed."""

import subprocess
import sys

from conftest import REPO


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_differences_are_reported_by_kind_and_lone_tables_listed(tmp_path):
    header = "run\tquantity\tvalue\tresidual\n"
    write(tmp_path / "a" / "t" / "x.tsv", header + "r\teigenvalue\t2.0\t1e-5\nr\ttrace\t10.0\t\n")
    write(tmp_path / "b" / "t" / "x.tsv", header + "r\teigenvalue\t2.002\t3e-5\nr\ttrace\t10.0\t\n")
    write(tmp_path / "a" / "t" / "only.tsv", "a\n1\n")
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "compare_runs.py"), "--a", str(tmp_path / "a"),
         "--b", str(tmp_path / "b"), "--out", str(tmp_path / "out.md")],
        capture_output=True, text=True, check=True,
    )
    report = (tmp_path / "out.md").read_text()
    assert "| value [eigenvalue] | 0.000999 |" in report
    assert "| residual | 0.667 |" in report
    assert "| value [trace] | 0 (equal in every row) |" in report
    assert "Only in " in report and "t/only.tsv" in report
    assert result.returncode == 0
