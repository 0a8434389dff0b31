"""benchmarks/gpu_check.sh without a GPU: its syntax, its dry run (which plans the tiny config on CUDA and shows
the harness command, whose flags run.py must accept), and, slow, its whole CPU mode at the smoke size."""

import os
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from benchmarks.run import parse_args

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"


def gpu_check(out: Path, *flags: str, seconds: int = 480) -> subprocess.CompletedProcess:
    env = {**os.environ, "OUT": str(out), "GPU_CHECK_SECONDS": str(seconds)}
    return subprocess.run(
        ["bash", str(SCRIPT), *flags], capture_output=True, text=True, env=env, timeout=seconds + 120
    )


def shown_commands(stdout: str) -> list[list[str]]:
    return [shlex.split(line[2:]) for line in stdout.splitlines() if line.startswith("+ ")]


def test_the_script_parses_and_refuses_unknown_options(tmp_path):
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    done = gpu_check(tmp_path, "--gpus")
    assert done.returncode == 2 and "unknown option --gpus" in done.stderr


def test_dry_run_plans_the_tiny_config_on_cuda_and_names_accepted_harness_flags(tmp_path):
    done = gpu_check(tmp_path, "--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
    snakemake, rehearsal, harness = shown_commands(done.stdout)
    assert snakemake[1:3] == ["-m", "snakemake"]
    assert snakemake[-2:] == ["--configfile", str(REPO / "tests" / "configs" / "tiny.yaml")]
    command = " ".join(snakemake)
    assert "--resources gpu=1" in command and "--config device=cuda gpus=1" in command
    assert f"--directory {tmp_path / 'workdir'}" in command, "a scratch working directory under $OUT"
    assert "train" in (tmp_path / "plan.txt").read_text(), "snakemake -n planned the jobs"
    assert rehearsal[0] == "env" and rehearsal[-1] == str(REPO / "tests" / "test_paper_rehearsal.py")
    variables = dict(word.split("=", 1) for word in rehearsal[1:4])
    assert variables == {"HESSIAN_SPECTRA_REHEARSAL_DIR": str(tmp_path / "rehearsal"),
                         "HESSIAN_SPECTRA_REHEARSAL_STUDIES": "hessianflow", "HESSIAN_SPECTRA_REHEARSAL_DEVICE": "cuda"}
    assert rehearsal[5:7] == ["-m", "pytest"] and "slow" in rehearsal
    assert harness[1] == str(REPO / "benchmarks" / "run.py")
    args = parse_args(harness[2:])
    assert args.device == "cuda" and args.out == tmp_path / "RESULTS-cuda.md" and 1 in args.sections
    assert (tmp_path / "gpu_check.log").read_text().strip() == done.stdout.strip()


@pytest.mark.slow
def test_cpu_mode_runs_a_config_and_the_smoke_harness(tmp_path):
    """Every step on the CPU, with the tiny config cut to one study (the whole tiny run is test_workflow's)."""
    config = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    for name, study in config["studies"].items():
        study["enabled"] = name == "layerhessians"
    configfile = tmp_path / "layerhessians.yaml"
    configfile.write_text(yaml.safe_dump(config))
    flags = ("--cpu", "--smoke", "--cores", "2", "--sections", "1 4", "--configfile", str(configfile),
             "--rehearsal-study", "none")  # the rehearsal's CPU run is tests/test_paper_rehearsal.py's
    done = gpu_check(tmp_path, *flags, seconds=2400)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "failed or was stopped" not in done.stdout, done.stdout
    report = (tmp_path / "RESULTS-cpu.md").read_text()
    for heading in ("## Targets", "## 1. Product cost", "## 4. Scaling"):
        assert heading in report
    assert "## 2. Top-5" not in report, "only the sections asked for"
    assert any((tmp_path / "logs").rglob("*.log")) and (tmp_path / "devices.txt").exists()
