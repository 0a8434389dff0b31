"""The code as the project keeps it: ruff (pyflakes, import order, docstrings), snakefmt and snakemake's linter
are clean; each test fails with the tool's own report."""

import subprocess
import sys

from conftest import REPO


def tool(*args: str) -> subprocess.CompletedProcess:
    """``python -m ARGS`` in the repository's root, with the test's interpreter (so the venv's tools)."""
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True)


def test_ruff_is_clean():
    result = tool("ruff", "check", "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakefmt_is_clean():
    result = tool("snakefmt", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakemake_lint_is_clean():
    result = tool("snakemake", "--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr
