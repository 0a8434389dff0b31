"""Checkpoints and tables know what they are: a checkpoint whose recorded run or epoch is not the one its path names,
and a damaged table or ``.npz``, each stop the job that reads it with one line naming the file and the
``--forcerun`` that rebuilds it."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, make_subset
from hessian_spectra import cli, layout
from hessian_spectra.checkpoint import UnreadableFileError, load_checkpoint
from hessian_spectra.runs import load_yaml, plan_runs
from hessian_spectra.tables import read_arrays, read_table, regenerate
from hessian_spectra.train.loop import train_run

SCHEMA = load_yaml(REPO / "workflow" / "schemas" / "config.schema.yaml")


def plan(seed: int) -> dict:
    study = {"defaults": {"model": "mlp", "dataset": "digits", "image_size": 8, "epochs": 1, "batch_size": 64,
                          "lr": 0.05, "seed": seed, "steps_per_epoch": 2}, "runs": [{}], "hessian_subset": {"size": 32}}
    (run,) = plan_runs({"studies": {"init_chain_rule": study}}, SCHEMA).values()
    return run


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, list[dict]]:
    """Two one-epoch runs (seeds 0 and 1) trained at their workflow paths under a scratch folder."""
    root = tmp_path_factory.mktemp("identity")
    runs = [plan(0), plan(1)]
    for run in runs:
        train_run(run, root / layout.run_dir(run["key"]))
    make_subset(runs[0], root / "subset.pt")
    return root, runs


@pytest.fixture
def workdir(trained, tmp_path) -> tuple[Path, list[dict]]:
    root, runs = trained
    shutil.copytree(root, tmp_path / "work")
    return tmp_path / "work", runs


def checkpoint(root: Path, run: dict, epoch: int) -> Path:
    return root / layout.run_files(run["key"]).checkpoint(epoch)


def test_an_intact_checkpoint_loads_wherever_its_run_lies(workdir):
    root, (run, _) = workdir
    assert load_checkpoint(checkpoint(root, run, 1))["epoch"] == 1
    elsewhere = root / "copy" / "checkpoints" / "epoch_0001.pt"
    elsewhere.parent.mkdir(parents=True)
    shutil.copy(checkpoint(root, run, 1), elsewhere)
    assert load_checkpoint(elsewhere)["run"]["key"] == run["key"], "a path outside results/ names no run"
    shutil.copy(checkpoint(root, run, 1), root / "any.pt")
    assert load_checkpoint(root / "any.pt")["epoch"] == 1


def test_the_wrong_epoch_copied_over_a_checkpoint_stops_its_reader_in_one_line(workdir, caplog):
    """`cp epoch_0000.pt epoch_0001.pt`: every reader names the file, both epochs and what rebuilds it."""
    root, (run, _) = workdir
    target = checkpoint(root, run, 1)
    shutil.copyfile(checkpoint(root, run, 0), target)
    with pytest.raises(UnreadableFileError) as caught:
        load_checkpoint(target)
    assert str(caught.value) == (
        f"{target}: holds epoch 0 of run {run['key']}, but its path names epoch 1 of run {run['key']} (copied or "
        f"moved by hand?); {regenerate(target)}"
    )
    out = root / "t.tsv"
    with caplog.at_level("ERROR"):
        code = cli.main(["spectrum", "--checkpoint", str(target), "--data", str(root / "subset.pt"), "--out", str(out),
                         "--top-k", "1", "--threads", "1"])
    assert code == 2 and not out.exists()
    (error,) = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert error == f"UnreadableFileError: {caught.value}"


def test_another_runs_checkpoint_is_named_with_both_runs(workdir):
    root, (run, other) = workdir
    target = checkpoint(root, run, 1)
    shutil.copyfile(checkpoint(root, other, 1), target)
    with pytest.raises(UnreadableFileError, match=(
        rf"^{target}: holds epoch 1 of run {other['key']}, but its path names epoch 1 of run {run['key']} "
    )):
        load_checkpoint(target)


def test_a_garbage_npz_names_its_file_and_the_forcerun(tmp_path, caplog):
    from hessian_spectra.matching import load_spectra

    path = tmp_path / "results" / "tables" / "epoch_0001.npz"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x93NUMPY garbage that is no array file" * 10)
    with pytest.raises(ValueError) as caught:
        load_spectra(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: arrays unreadable, truncated or corrupt (") and "\n" not in message
    assert message.endswith(regenerate(path))
    np.savez(path, blocks=np.array(["full"]), nodes_0=np.zeros(3))
    with pytest.raises(ValueError, match=rf"^{path}: lacks array\(s\) weights_0, grid_0, density_0; rerun Snakemake"):
        load_spectra(path)
    np.savez(path, a=np.zeros(2))
    assert read_arrays(path)["a"].tolist() == [0, 0]


def test_a_pickled_npz_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "spectrum.npz"
    np.savez(path, blocks=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match=rf"^{path}: arrays unreadable, truncated or corrupt \(.*allow_pickle"):
        read_arrays(path)


def test_a_garbage_table_names_its_file_and_the_forcerun(tmp_path):
    path = tmp_path / "trajectory.tsv"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ValueError) as caught:
        read_table(path, required=("epoch",))
    message = str(caught.value)
    assert message.startswith(f"{path}: table ") and message.endswith(regenerate(path)) and "\n" not in message


def test_a_subset_at_another_subsets_path_is_named_with_both(workdir):
    from hessian_spectra.data.subset import load_subset
    from hessian_spectra.runs import subset_key

    root, (run, _) = workdir
    other = {**run["subset"], "size": 16}
    right, wrong = (root / layout.subset(subset_key(spec)) for spec in (run["subset"], other))
    make_subset(run, right)
    load_subset(right)
    wrong.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(right, wrong)
    with pytest.raises(UnreadableFileError) as caught:
        load_subset(wrong)
    assert str(caught.value) == (
        f"{wrong}: holds the subset {subset_key(run['subset'])}, but its path names {subset_key(other)} (copied or "
        f"moved by hand?); {regenerate(wrong)}"
    )
