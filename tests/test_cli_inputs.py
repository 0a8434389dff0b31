"""Command-line inputs checked up front: one line naming the flag and what fits (the findings plan's studies, a
Hessian subset against the checkpoint's model, a figure target outside the config), and `hessian-spectra --help`
whole."""

import ast
import json
import subprocess
import sys

import pytest
import torch

from conftest import REPO, make_subset, snakemake
from hessian_spectra import cli, layout
from hessian_spectra.checkpoint import FORMAT_VERSION, build_from_spec, model_spec, save_atomic
from hessian_spectra.inputs import config_entry
from hessian_spectra.runs import load_yaml, plan_runs, subset_key, training_config
from hessian_spectra.studies import built_in

SCHEMA = load_yaml(REPO / "workflow" / "schemas" / "config.schema.yaml")


def _cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hessian_spectra", *args], capture_output=True, text=True, cwd=cwd)


def _error_line(result: subprocess.CompletedProcess) -> str:
    """The one line a failing command prints (after the log's time and level)."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    return lines[0].split("ERROR hessian_spectra: ", 1)[1]


# ---------------------------------------------------------------------------------------------------- findings
@pytest.mark.parametrize("plan, says", [
    ('{"config": "", "runs": {"bogus": []}}', "--plan: unknown study bogus; allowed: " + ", ".join(study.name for study in built_in())),
    ("...", "--plan: not a plan of runs"),
])
def test_findings_stops_on_a_plan_of_other_studies_and_writes_nothing(plan, says, tmp_path):
    out = tmp_path / "findings.tsv"
    assert _error_line(_cli("findings", "--plan", plan, "--out", str(out), cwd=tmp_path)).startswith(
        f"ValueError: {says}")
    assert not out.exists()


# ---------------------------------------------------------------------------------------------------- subsets
def _planned(image_size: int) -> dict:
    study = {"defaults": {"model": "mlp", "dataset": "digits", "image_size": image_size, "epochs": 1, "lr": 0.05,
                          "batch_size": 32}, "runs": [{}], "hessian_subset": {"size": 40}}
    (run,) = plan_runs({"studies": {"sharpest_directions": study}}, SCHEMA).values()
    return run


def _checkpoint(run: dict, path, num_classes: int = 10):
    """The initial checkpoint of ``run`` as training writes it (its training configuration included)."""
    spec = model_spec(run["model"], 1, run["image_size"], num_classes, run["model_options"])
    torch.manual_seed(0)
    save_atomic({"format": FORMAT_VERSION, "model": spec, "state_dict": build_from_spec(spec).state_dict(),
                 "epoch": 0, "run": training_config(run), "trainer": {"history": [{"steps": 0}]}}, path)
    return path


@pytest.fixture
def mismatched(tmp_path):
    """A checkpoint of an 8px run and the Hessian subset of the same selection made at 16px."""
    run8, run16 = _planned(8), _planned(16)
    checkpoint = _checkpoint(run8, tmp_path / "epoch_0000.pt")
    subset = make_subset(run16, tmp_path / "subset16.pt")
    return tmp_path, run8, checkpoint, subset


def test_spectrum_names_the_subset_that_fits_the_checkpoint(mismatched):
    tmp_path, run8, checkpoint, subset = mismatched
    out = tmp_path / "spectrum.tsv"
    line = _error_line(_cli("spectrum", "--checkpoint", str(checkpoint), "--data", str(subset), "--out", str(out),
                            "--top-k", "1"))
    fits = layout.subset(subset_key(run8["subset"]))
    assert fits == "results/subsets/digits/8px-unit/train-random-n40-seed0.pt"
    assert line == (f"ValueError: --data {subset}: images are 1x16x16 (channels x height x width), but --checkpoint "
                    f"{checkpoint} was trained on 1x8x8; the subset with this selection for its run is {fits} "
                    "(Snakemake makes it)")
    assert not out.exists()


def test_walking_commands_check_their_subset_before_the_first_epoch(mismatched):
    tmp_path, run8, checkpoint, subset = mismatched
    (tmp_path / "run.json").write_text(json.dumps({**training_config(run8), "key": run8["key"]}))
    out = tmp_path / "trajectory.tsv"
    line = _error_line(_cli("sharpest-directions", "trajectory", "--run-json", str(tmp_path / "run.json"),
                            "--checkpoints", str(checkpoint), "--subset", str(subset), "--out", str(out)))
    assert line.startswith(f"ValueError: --subset {subset}: images are 1x16x16") and f"--checkpoints {checkpoint}" in line
    assert not out.exists()


def test_a_subset_with_more_classes_than_the_model_is_refused(tmp_path):
    run = _planned(8)
    checkpoint = _checkpoint(run, tmp_path / "epoch_0000.pt", num_classes=3)
    subset = make_subset(run, tmp_path / "subset.pt")
    line = _error_line(_cli("landscape", "--checkpoint", str(checkpoint), "--data", str(subset), "--out",
                            str(tmp_path / "landscape.tsv"), "--directions", "random"))
    assert line.startswith(f"ValueError: --data {subset}: has label 9, but the model of --checkpoint {checkpoint} "
                           "has 3 classes; the subset with this selection for its run is")


# ---------------------------------------------------------------------------------------------------- targets
def test_config_entry_names_the_target_and_the_config_keys():
    sizes = {"16": ["a"], "64": ["b"]}
    assert config_entry(sizes, "64", "t.png", "batch size", "the runs") == ["b"]
    with pytest.raises(ValueError, match=r"^t\.png: batch size 512 is not in the runs; its batch sizes: 16, 64$"):
        config_entry(sizes, "512", "t.png", "batch size", "the runs")


def test_a_figure_of_a_batch_size_the_config_does_not_train_names_the_sizes_it_does(tmp_path):
    target = layout.figure("large_batch", "loss_surface_bs512.png")
    result = snakemake(tmp_path, "-n", target, configfile=REPO / "config.yaml")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"{target}: batch size 512 is not in this config's large_batch runs; its batch sizes: 16, 64, 256" in output
    assert "KeyError" not in output


# ---------------------------------------------------------------------------------------------------- --help
def test_help_gives_every_command_its_whole_summary():
    text = " ".join(_cli("--help").stdout.split())
    for module in (REPO / "src" / "hessian_spectra" / "commands").glob("[!_]*.py"):
        doc = ast.get_docstring(ast.parse(module.read_text()))
        summary = " ".join(doc.split("\n\n")[0].split()).split(": ", 1)[1].replace("``", "`")
        assert summary.endswith(".") and summary in text, module.name
    assert cli.available_commands()["findings"].endswith("a verdict each with its rule and numbers (torch-free).")
