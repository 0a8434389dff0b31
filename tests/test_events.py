"""TensorBoard events (the optional extra): training curves and curvature numbers read back with TensorBoard's
own reader, rewritten whole on a rerun; without TensorBoard nothing is written."""

import csv
import sys

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import REPO, make_subset
from hessian_spectra.layout import RunFiles, table_events
from hessian_spectra.runs import load_yaml, plan_runs
from hessian_spectra.spectrum import SpectrumRequest, checkpoint_spectra
from hessian_spectra.train.loop import train_run

SCHEMA = load_yaml(REPO / "workflow" / "schemas" / "config.schema.yaml")


def _run() -> dict:
    study = {"defaults": {"model": "mlp", "dataset": "digits", "image_size": 8, "epochs": 2, "lr": 0.05,
                          "batch_size": 64, "valid_size": 100}, "runs": [{}], "hessian_subset": {"size": 64}}
    (run,) = plan_runs({"studies": {"sharpest_directions": study}}, SCHEMA).values()
    return run


def _scalars(folder) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def _column(rows, name):
    return [(int(row["epoch"]), pytest.approx(float(row[name]), rel=1e-6)) for row in rows]


def test_training_and_curvature_events_read_back_and_a_rerun_rewrites_them(tmp_path):
    run = _run()
    train_run(run, tmp_path / "run")
    files = RunFiles(str(tmp_path / "run"))
    with open(files.history, newline="") as handle:
        history = list(csv.DictReader(handle, delimiter="\t"))
    scalars = _scalars(files.events)
    for tag, column in [("train/loss", "train_loss"), ("train/accuracy", "train_acc"), ("valid/loss", "valid_loss"),
                        ("valid/accuracy", "valid_acc"), ("test/loss", "test_loss"), ("train/lr", "lr")]:
        assert scalars[tag] == _column(history, column), tag

    train_run(run, tmp_path / "run")  # every epoch is stored: nothing trains, the events are written again
    assert _scalars(files.events) == scalars
    assert len(list((tmp_path / "run" / "tensorboard").iterdir())) == 1, "one event file, no duplicates"

    table = tmp_path / "tables" / "trajectory.tsv"
    subset = make_subset(run, tmp_path / "subset.pt")
    checkpoint_spectra(files.checkpoints(2), subset, SpectrumRequest(top_k=2, tol=1e-3), 64, "cpu", table)
    with open(table, newline="") as handle:
        rows = [row for row in csv.DictReader(handle, delimiter="\t") if row["quantity"] == "eigenvalue"]
    curvature = _scalars(table_events(table))
    assert sorted(curvature) == ["full/lambda_1", "full/lambda_2"]
    for index in (1, 2):
        assert curvature[f"full/lambda_{index}"] == _column([r for r in rows if r["index"] == str(index)], "value")


def test_without_tensorboard_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    train_run(_run(), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".checkpoint-store", "checkpoints", "history.tsv", "run.json"]


def test_per_epoch_spectrum_jobs_make_one_tensorboard_run_with_epochs_as_steps(tmp_path, monkeypatch):
    """Each epoch's layer-spectrum job (``layout.layer_spectrum``: one table per checkpoint) adds its own event file
    to one folder per run: TensorBoard reads a curve over training; rerunning an epoch replaces its file only."""
    from hessian_spectra import cli
    from hessian_spectra.layout import layer_spectrum

    run = _run()
    train_run(run, tmp_path / "run")
    checkpoints = RunFiles(str(tmp_path / "run")).checkpoints(2)
    subset = make_subset(run, tmp_path / "subset.pt")
    monkeypatch.chdir(tmp_path)
    tables = [layer_spectrum("run", epoch, "tsv") for epoch in range(3)]

    def spectrum(epoch: int) -> None:
        assert cli.main(["spectrum", "--checkpoint", checkpoints[epoch], "--data", str(subset), "--out",
                         tables[epoch], "--layers", "--top-k", "2", "--density-steps", "4", "--batch-size", "64"]) == 0

    for epoch in (2, 0, 1):  # jobs finish in any order
        spectrum(epoch)
    folder = tmp_path / "results" / "tables" / "run" / "layer_spectra" / "tensorboard"
    assert sorted(p.name for p in folder.iterdir()) == [f"events.out.tfevents.epoch_000{e}" for e in range(3)]
    scalars = _scalars(folder)
    rows = []
    for table in tables:
        with open(table, newline="") as handle:
            rows += list(csv.DictReader(handle, delimiter="\t"))
    blocks = sorted({row["block"] for row in rows})
    assert len(blocks) == 4  # the full Hessian and the mlp's 3 layer blocks
    for block in blocks:
        for index in (1, 2):
            wanted = [r for r in rows if (r["block"], r["quantity"], r["index"]) == (block, "eigenvalue", str(index))]
            assert scalars[f"{block}/lambda_{index}"] == _column(sorted(wanted, key=lambda r: int(r["epoch"])), "value")
        assert [step for step, _ in scalars[f"{block}/density_trace"]] == [0, 1, 2]

    (folder / "epoch_0001").mkdir()  # the folder of one epoch alone that earlier versions wrote
    spectrum(1)
    assert sorted(p.name for p in folder.iterdir()) == [f"events.out.tfevents.epoch_000{e}" for e in range(3)]
    assert _scalars(folder) == scalars
