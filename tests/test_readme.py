"""Every shell command in the README's code blocks runs as written: Snakemake's as a dry run (`-n`) in a scratch
directory, `make` as `make -n`, the library's CLI for real where it needs no files and otherwise parsed by the
command's own parser, TensorBoard on event files the library wrote, so a renamed flag or target fails here."""

import re
import shlex
import subprocess
import sys

import pytest

from conftest import REPO
from hessian_spectra.cli import available_commands, command_parser

README = (REPO / "README.md").read_text()


def readme_commands() -> list[str]:
    """The commands of every ```bash block: continuation lines joined, comments dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line:
                commands.append(line)
    return commands


COMMANDS = readme_commands()
QUICK_START = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_the_readme_has_commands_of_every_kind():
    kinds = {shlex.split(command)[0] for command in COMMANDS}
    assert kinds == {"make", "snakemake", "hessian-spectra", "tensorboard"}, kinds


@pytest.mark.slow
@pytest.mark.parametrize("command", [c for c in COMMANDS if c.startswith("snakemake")])
def test_snakemake_commands_plan(command, tmp_path):
    words = shlex.split(command)
    dry = [] if "--unlock" in words else ["-n"]
    (tmp_path / "examples").symlink_to(REPO / "examples")  # as from the repository root, whose examples/ it imports
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", *words[1:], *dry, "--directory", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, f"{command}\n{result.stderr[-3000:]}"
    if dry:
        assert "Job stats" in result.stdout + result.stderr or "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.startswith("make")])
def test_make_commands_exist(command):
    result = subprocess.run(["make", "-n", *shlex.split(command)[1:]], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.startswith("hessian-spectra")])
def test_cli_commands_parse(command):
    """Placeholders (CKPT, ...) stand for files: the command's own parser must accept every flag and value."""
    words = shlex.split(command)[1:]
    if words == ["--help"]:
        result = subprocess.run([sys.executable, "-m", "hessian_spectra", "--help"], capture_output=True, text=True)
        assert result.returncode == 0 and "commands:" in result.stdout
        return
    name, arguments = words[0], words[1:]
    parser, _module = command_parser(name, available_commands()[name])
    parser.parse_args(arguments)


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.startswith("tensorboard")])
def test_tensorboard_commands_find_the_events(command, tmp_path):
    """`--inspect` makes TensorBoard read the log directory and exit instead of serving it."""
    from hessian_spectra.events import write_scalars

    assert write_scalars(tmp_path / "results" / "run" / "tensorboard", {"train/loss": [(0, 2.3), (1, 1.1)]})
    words = shlex.split(command)
    result = subprocess.run([sys.executable, "-m", "tensorboard.main", *words[1:], "--inspect"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "train/loss" in result.stdout and "last_step            1" in result.stdout


def test_the_library_quick_start_runs_as_written(tmp_path, monkeypatch):
    """The README's python block, executed: it converges and states every number's error."""
    import math

    assert len(QUICK_START) == 1, "one quick start"
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__readme__"}
    exec(compile(QUICK_START[0], "README.md (quick start)", "exec"), namespace)
    assert namespace["top"].all_converged and len(namespace["top"].eigenvalues) == 5
    assert math.isfinite(namespace["trace"].stderr) and namespace["trace"].stderr > 0
    assert namespace["density"].nodes.max() == pytest.approx(namespace["top"].eigenvalues[0], rel=1e-3)
    assert len(namespace["layers"].blocks) == 5
