"""Study `sharpest_directions`: the `sharpest-directions trajectory` command against the dense Hessian, the run
grouping behind the grid and gamma figures, the sharpness table, torch-free figure commands, and the tiny workflow
end to end (slow)."""

import json
import math
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, make_subset, run_checkpoints
from hessian_spectra import layout
from hessian_spectra.plots import sharpest_directions as plots
from hessian_spectra.runs import load_yaml, plan_runs
from hessian_spectra.spectrum import COLUMNS, result_row
from hessian_spectra.studies.sharpest_directions.table import build_table, load_study, run_row
from hessian_spectra.tables import write_rows

SCHEMA = load_yaml(REPO / "workflow" / "schemas" / "config.schema.yaml")
TINY = REPO / "tests" / "configs" / "tiny.yaml"
FIGURES = ["spectrum_trajectory", "lr_grid", "bs_grid", "nsgd_gamma"]


def plan(*entries, seeds: int = 1, **defaults) -> list[dict]:
    base = {"model": "simple_cnn_medium", "dataset": "digits", "batch_size": 32, "epochs": 2, "lr": 0.05,
            "momentum": 0.0}
    study = {"defaults": {**base, **defaults}, "runs": list(entries), "hessian_subset": {"size": 64}, "seeds": seeds}
    return list(plan_runs({"studies": {"sharpest_directions": study}}, SCHEMA).values())


def fake_study(tmp_path, runs: list[dict], top_k: int = 3, scale=lambda r, run: r + 1) -> list:
    """Run directories with run.json, history.tsv and a trajectory.tsv of made-up eigenvalues: lambda_i at epoch e
    of the r-th run is ``scale(r, run)`` (e + 1) 10 / i (its validation accuracy 0.2 e + (scale - 1) / 100);
    lambda_2 at epoch 1 is not converged."""
    dirs = []
    for r, run in enumerate(runs):
        run_dir = tmp_path / run["key"]
        run_dir.mkdir(parents=True)
        (run_dir / "run.json").write_text(json.dumps(run))
        epochs = range(run["epochs"] + 1)
        history = {"epoch": epochs, "steps": [7 * e for e in epochs], "train_loss": [2.3 / (e + 1) for e in epochs],
                   "test_acc": [0.1 * e for e in epochs], "valid_acc": [0.2 * e + 0.01 * (scale(r, run) - 1) for e in epochs]}
        pd.DataFrame(history).to_csv(run_dir / "history.tsv", sep="\t", index=False)
        rows = [{"epoch": e, **result_row("full", "eigenvalue", i, scale(r, run) * (e + 1) * 10.0 / i,
                                          tolerance=1e-3, residual=1.0 if (e, i) == (1, 2) else 1e-6 * i,
                                          products=40)}
                for e in epochs for i in range(1, top_k + 1)]
        write_rows(run_dir / "trajectory.tsv", COLUMNS, rows)
        dirs.append(run_dir)
    return dirs


def study_files(dirs: list) -> tuple[list[str], list[str], list[str]]:
    """The run.json, history and trajectory table of each ``fake_study`` directory: what load_study and the
    study's commands take."""
    return tuple([str(d / name) for d in dirs] for name in ("run.json", "history.tsv", "trajectory.tsv"))


def test_trajectory_matches_the_dense_hessian_with_l2(tmp_path):
    import torch

    from hessian_spectra.checkpoint import model_from_checkpoint
    from hessian_spectra.curvature import dense_hessian
    from hessian_spectra.data import load_subset

    (run,) = plan({"model": "mlp", "model_options": {"hidden": [6]}, "image_size": 4, "l2": 0.05})
    out = tmp_path / "trajectory.tsv"
    run_dir, subset = tmp_path / "run", make_subset(run, tmp_path / "subset.pt")
    files = layout.RunFiles(str(run_dir))
    for command in (
        ["train", "--run", json.dumps(run), "--out-dir", str(run_dir)],
        ["sharpest-directions", "trajectory", "--run-json", files.run_json,
         "--checkpoints", *files.checkpoints(run["epochs"]),
         "--subset", str(subset), "--out", str(out), "--top-k", "3", "--tol", "1e-8", "--max-steps", "300",
         "--batch-size", "50"],
    ):
        result = subprocess.run([sys.executable, "-m", "hessian_spectra", *command, "--threads", "1"],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
    table = pd.read_csv(out, sep="\t")
    assert sorted(table["epoch"].unique()) == [0, 1, 2]
    assert (table.groupby("epoch")["index"].apply(list) == pd.Series({e: [1, 2, 3] for e in range(3)})).all()
    assert table["converged"].all() and (table["residual"] < 1e-5 * table["value"]).all()
    x, y, _ = load_subset(subset)
    for epoch in range(3):
        model = model_from_checkpoint(files.checkpoint(epoch)).double()
        hessian = dense_hessian(model, [(x.double(), y)]) + 0.05 * torch.eye(sum(p.numel() for p in model.parameters()),
                                                                               dtype=torch.float64)
        expected = np.sort(np.linalg.eigvalsh(hessian.numpy()))[::-1][:3]
        got = table[table["epoch"] == epoch].sort_values("index")["value"].to_numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_grid_and_gamma_groups_follow_the_config_rule():
    runs = plan(
        {"grid": {"lr": [0.01, 0.05, 0.1]}},
        {"grid": {"batch_size": [16, 128]}},
        {"optimizer": {"name": "nsgd", "kk": 3}, "grid": {"optimizer.gamma": [0.1, 5.0]}},
        {"optimizer": {"name": "nsgd", "kk": 5, "gamma": 0.1}},
        {"l2": 1e-3, "lr": 0.02},
    )
    table = pd.DataFrame([run_row(run) for run in runs])
    (lr_group,) = plots.grid_groups(table, "lr")
    assert lr_group["lr"].tolist() == [0.01, 0.05, 0.1] and set(lr_group["batch_size"]) == {32}
    (bs_group,) = plots.grid_groups(table, "batch_size")
    assert bs_group["batch_size"].tolist() == [16, 32, 128] and set(bs_group["lr"]) == {0.05}
    kk3, kk5 = sorted(plots.gamma_groups(table), key=lambda g: g["kk"].max())
    assert kk3["gamma"].tolist() == [0.1, 1.0, 5.0]
    assert kk3["optimizer"].tolist() == ["nsgd", "sgd", "nsgd"]
    assert kk5["gamma"].tolist() == [0.1, 1.0] and kk5["kk"].max() == 5


def test_runs_that_differ_only_by_seed_fall_in_one_group_as_in_the_default_config():
    """The default config's shape: steps per epoch, NSGD at lr 0.01 so that its SGD run is the lr grid's 0.01 one;
    with two seeds every group holds both seeds of each of its configurations."""
    runs = plan(
        {"grid": {"lr": [0.01, 0.05, 0.1]}},
        {"grid": {"batch_size": [16, 128]}},
        {"optimizer": {"name": "nsgd", "kk": 3}, "lr": 0.01, "grid": {"optimizer.gamma": [0.1, 5.0]}},
        seeds=2, steps_per_epoch=40, epochs=10,
    )
    table = pd.DataFrame([run_row(run) for run in runs])
    assert all(sorted(seeds) == [0, 1] for _, seeds in table.groupby("configuration")["seed"])
    (lr_group,) = plots.grid_groups(table, "lr")
    assert list(zip(lr_group["lr"], lr_group["seed"])) == [(lr, seed) for lr in (0.01, 0.05, 0.1) for seed in (0, 1)]
    (bs_group,) = plots.grid_groups(table, "batch_size")
    assert list(zip(bs_group["batch_size"], bs_group["seed"])) == [(b, s) for b in (16, 32, 128) for s in (0, 1)]
    (gammas,) = plots.gamma_groups(table)
    assert list(zip(gammas["gamma"], gammas["optimizer"], gammas["seed"])) == [
        (0.1, "nsgd", 0), (0.1, "nsgd", 1), (1.0, "sgd", 0), (1.0, "sgd", 1), (5.0, "nsgd", 0), (5.0, "nsgd", 1)]
    assert set(gammas.loc[gammas["optimizer"] == "sgd", "lr"]) == {0.01}


def seeded_study(tmp_path, *entries, seeds=2):
    """``fake_study`` of ``entries`` with ``seeds`` seeds; seed s scales every eigenvalue by 1 + 2 s."""
    runs = plan(*entries, seeds=seeds)
    return runs, load_study(*study_files(fake_study(tmp_path, runs, scale=lambda r, run: 1 + 2 * run["seed"])))


def lines_labelled(ax, label: str) -> list:
    return [line for line in ax.get_lines() if line.get_label() == label]


def bands(ax) -> list:
    from matplotlib.collections import PolyCollection

    return [c for c in ax.collections if isinstance(c, PolyCollection)]


def band_corners(band) -> set:
    return {tuple(np.round(v, 9)) for path in band.get_paths() for v in path.vertices}


def test_grid_figure_draws_the_mean_over_seeds_in_their_band(tmp_path):
    runs, tables = seeded_study(tmp_path, {"grid": {"lr": [0.01, 0.05]}})
    fig = plots.grid_figure(tables, "lr")
    ax_1, ax_2 = fig.axes[:2]
    for ax, index in ((ax_1, 1), (ax_2, 2)):
        (line,) = lines_labelled(ax, "lr=0.01")
        seeds = tables.eigen([run["key"] for run in runs if run["lr"] == 0.01], index).pivot(
            index="epoch", columns="run", values="value")
        np.testing.assert_allclose(line.get_ydata(), seeds.mean(axis=1))
        assert len(bands(ax)) == 2  # one band per learning rate
        assert any({(e, round(seeds.loc[e].min(), 9)) for e in seeds.index} |
                   {(e, round(seeds.loc[e].max(), 9)) for e in seeds.index} <= band_corners(band)
                   for band in bands(ax))
    crosses = [c for c in ax_2.collections if c not in bands(ax_2)]
    marked = np.concatenate([c.get_offsets() for c in crosses])
    mean_at_1 = tables.eigen([run["key"] for run in runs if run["lr"] == 0.01], 2).query("epoch == 1")["value"].mean()
    assert np.isclose(marked, [1.0, mean_at_1]).all(axis=1).any()
    assert "range over 2 seeds (line: mean)" in [t.get_text() for t in ax_2.figure.legends[0].get_texts()]


def test_grid_figure_of_one_seed_draws_each_run_without_a_band(tmp_path):
    runs, tables = seeded_study(tmp_path, {"grid": {"lr": [0.01, 0.05]}}, seeds=1)
    fig = plots.grid_figure(tables, "lr")
    ax = fig.axes[0]
    assert not bands(ax)
    (line,) = lines_labelled(ax, "lr=0.05")
    np.testing.assert_allclose(line.get_ydata(), tables.eigen(runs[1]["key"], 1)["value"])
    assert not any("seeds" in t.get_text() for t in ax.figure.legends[0].get_texts())


def test_a_diverged_seed_is_drawn_apart_and_not_in_the_mean(tmp_path):
    runs, tables = seeded_study(tmp_path, {"optimizer": {"name": "nsgd", "kk": 2}, "grid": {"optimizer.gamma": [5.0]}},
                                {})
    (bad,) = [run["key"] for run in runs if run["optimizer"]["name"] == "nsgd" and run["seed"] == 1]
    tables.runs.loc[tables.runs["run"] == bad, "diverged"] = "final valid_acc 0.1 below twice chance (0.1)"
    ax_eig, ax_acc = plots.nsgd_gamma_figure(tables).axes[:2]
    (good,) = [run["key"] for run in runs if run["optimizer"]["name"] == "nsgd" and run["seed"] == 0]
    (mean,) = lines_labelled(ax_eig, "γ=5")
    np.testing.assert_allclose(mean.get_ydata(), tables.eigen(good, 1)["value"])
    (apart,) = [line for line in ax_eig.get_lines() if line.get_label().startswith("γ=5, seed 1 DIVERGED: final")]
    np.testing.assert_allclose(apart.get_ydata(), tables.eigen(bad, 1)["value"])
    assert apart.get_linestyle() == ":"
    (sgd,) = lines_labelled(ax_acc, "γ=1 (SGD)")
    sgd_runs = [run["key"] for run in runs if run["optimizer"]["name"] == "sgd"]
    accuracies = np.array([tables.history(key)["valid_acc"] for key in sgd_runs])
    np.testing.assert_allclose(sgd.get_ydata(), accuracies.mean(axis=0))
    assert len(bands(ax_acc)) == 1  # the SGD pair's; the NSGD pair lost a seed to divergence


def test_spectrum_trajectory_has_a_panel_per_configuration(tmp_path):
    runs, tables = seeded_study(tmp_path, {"grid": {"lr": [0.01, 0.05]}})
    fig = plots.spectrum_trajectory_figure(tables)
    panels = [ax for ax in fig.axes if ax.get_lines()]
    assert len(panels) == 2 and all("(2 seeds)" in ax.get_title() for ax in panels)
    (line,) = lines_labelled(panels[0], "λ3")
    np.testing.assert_allclose(line.get_ydata(), tables.eigen([runs[0]["key"], runs[1]["key"]], 3)
                               .groupby("epoch")["value"].mean())
    assert len(bands(panels[0])) == 3


def test_sharpness_table_and_figures_from_tables(tmp_path):
    runs = plan({"grid": {"lr": [0.01, 0.05]}}, {"optimizer": {"name": "nsgd", "kk": 2, "gamma": 0.1}})
    files = study_files(fake_study(tmp_path / "runs", runs))
    tables, table = load_study(*files), build_table(*files)
    assert table["run"].tolist() == [run["key"] for run in runs]
    assert table.columns[:2].tolist() == ["run", "seed"] and table["seed"].tolist() == [0, 0, 0]
    first = table.iloc[0]
    assert first["epoch"] == 2 and first["steps"] == 14 and first["top_k"] == 3
    assert first["lambda_max"] == pytest.approx(30.0)
    assert first["frobenius_topk"] == pytest.approx(math.sqrt(30.0**2 + 15.0**2 + 10.0**2))
    assert first["peak_epoch"] == 2 and first["topk_converged"] and first["final_valid_acc"] == pytest.approx(0.4)
    assert tables.trajectories["converged"].sum() == len(tables.trajectories) - len(runs)
    from hessian_spectra.plots.common import save_figure

    out = tmp_path / "figures"
    save_figure(plots.spectrum_trajectory_figure(tables), out / "spectrum_trajectory.png")
    save_figure(plots.grid_figure(tables, "lr"), out / "lr_grid.png")
    save_figure(plots.grid_figure(tables, "batch_size"), out / "bs_grid.png")
    save_figure(plots.nsgd_gamma_figure(tables), out / "nsgd_gamma.png")
    assert all((out / f"{name}.png").stat().st_size > 5000 for name in FIGURES)


def test_a_run_ending_near_chance_is_marked_diverged_in_the_table_and_the_gamma_figure(tmp_path):
    runs = plan({"optimizer": {"name": "nsgd", "kk": 2}, "grid": {"optimizer.gamma": [0.1, 5.0]}})
    dirs = fake_study(tmp_path / "runs", runs)
    history = pd.read_csv(dirs[1] / "history.tsv", sep="\t")
    history["valid_acc"] = [0.1, 0.3, 0.15]  # digits: 10 classes, below twice chance at the end
    history.to_csv(dirs[1] / "history.tsv", sep="\t", index=False)
    tables = load_study(*study_files(dirs))
    table = build_table(*study_files(dirs)).set_index("run")
    assert not table.loc[runs[0]["key"], "diverged"] and table.loc[runs[0]["key"], "diverged_because"] == ""
    assert table.loc[runs[1]["key"], "diverged"]
    assert "below twice chance" in table.loc[runs[1]["key"], "diverged_because"]
    fig = plots.nsgd_gamma_figure(tables)
    labels = [line.get_label() for line in fig.axes[1].get_lines()]
    assert any(label.startswith("γ=5 DIVERGED") for label in labels)
    assert not any("DIVERGED" in label for label in labels if label.startswith("γ=0.1"))


def test_figure_and_table_commands_do_not_import_torch(tmp_path):
    runs = plan({"grid": {"batch_size": [16, 32]}})
    run_files, histories, trajectories = study_files(fake_study(tmp_path / "runs", runs))
    inputs = ["--runs", *run_files, "--histories", *histories, "--trajectories", *trajectories]
    code = (
        "import sys\nfrom hessian_spectra.cli import main\n"
        f"assert main(['sharpest-directions', 'figures', *{inputs!r}, '--out-dir', {str(tmp_path)!r}]) == 0\n"
        f"assert main(['sharpest-directions', 'table', *{inputs!r}, '--out', {str(tmp_path / 't.csv')!r}]) == 0\n"
        "assert 'torch' not in sys.modules, 'a figure command imported torch'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert all((tmp_path / f"{name}.png").is_file() for name in FIGURES)
    assert len(pd.read_csv(tmp_path / "t.csv")) == 2


def _trajectory(run_json: str, checkpoints: list[str], subset, out) -> subprocess.Popen:
    """`sharpest-directions trajectory` as a subprocess; fixed work per epoch (a tolerance no float32 Ritz pair meets), so
    every epoch takes long enough to kill the job between two of them."""
    command = [sys.executable, "-m", "hessian_spectra", "sharpest-directions", "trajectory", "--run-json", run_json,
               "--checkpoints", *checkpoints, "--subset", str(subset), "--out", str(out), "--top-k", "3",
               "--tol", "1e-12", "--max-steps", "40", "--batch-size", "64", "--threads", "1"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_killed_trajectory_job_resumes_at_its_first_unfinished_epoch(tmp_path):
    from hessian_spectra.train.loop import train_run

    (run,) = plan({"model": "mlp", "model_options": {"hidden": [16]}, "image_size": 8, "epochs": 4})
    run_dir, subset = tmp_path / "run", make_subset(run, tmp_path / "subset.pt")
    train_run(run, run_dir)
    run_json, checkpoints = layout.RunFiles(str(run_dir)).run_json, run_checkpoints(run_dir)
    assert len(checkpoints) == 5

    reference = tmp_path / "reference" / "trajectory.tsv"
    uninterrupted = _trajectory(run_json, checkpoints, subset, reference)
    _, stderr = uninterrupted.communicate(timeout=600)
    assert uninterrupted.returncode == 0, stderr
    assert "resuming" not in stderr

    out = tmp_path / "killed" / "trajectory.tsv"
    parts = layout.resume_dir(out)
    assert parts == out.parent / ".trajectory.tsv.epochs"
    proc = _trajectory(run_json, checkpoints, subset, out)
    deadline = time.monotonic() + 600
    while not (parts.is_dir() and any(parts.glob("epoch_*.tsv"))):
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    killed_stderr = proc.communicate()[1]
    finished = sorted(path.name.split("-")[0] for path in parts.glob("epoch_*.tsv"))
    assert not out.exists() and len(finished) < len(checkpoints), f"the job was not killed mid-way: {killed_stderr}"
    assert finished == [f"epoch_{epoch:04d}" for epoch in range(len(finished))]

    resumed = _trajectory(run_json, checkpoints, subset, out)
    _, stderr = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, stderr
    assert f"resuming at epoch {len(finished)}" in stderr, stderr
    assert out.read_bytes() == reference.read_bytes()
    assert not parts.exists(), "the per-epoch files go once the table is written"


@pytest.mark.slow
def test_tiny_workflow_produces_the_figures_and_table(tiny_run):
    tmp_path = tiny_run
    config = yaml.safe_load(TINY.read_text())
    config["studies"] = {"sharpest_directions": config["studies"]["sharpest_directions"]}
    targets = [layout.figure("sharpest_directions", f"{name}.png") for name in FIGURES]
    targets.append(layout.study_table("sharpest_directions", "sharpness_table.csv"))
    runs = plan_runs(config, SCHEMA)
    for target in targets:
        assert (tmp_path / target).stat().st_size > 0, target
    table = pd.read_csv(tmp_path / targets[-1])
    assert sorted(table["run"]) == sorted(runs)
    assert table["lambda_max"].gt(0).all() and table["lambda_max_converged"].all()
    for key in runs:
        trajectory = pd.read_csv(tmp_path / layout.trajectory(key), sep="\t")
        assert sorted(trajectory["epoch"].unique()) == [0, 1, 2]
        assert set(trajectory["index"]) == {1, 2, 3}
    nsgd = next(key for key, run in runs.items() if run["optimizer"]["name"] == "nsgd")
    history = pd.read_csv(tmp_path / layout.run_files(nsgd).history, sep="\t")
    assert history["nsgd_lambda1"].iloc[1:].gt(0).all() and "nsgd_residual2" in history


def _edges(ax) -> dict[str, tuple]:
    """The edge-of-stability lines of a panel: label -> (y, colour)."""
    return {line.get_label(): (line.get_ydata()[0], line.get_color()) for line in ax.get_lines()
            if line.get_linestyle() == "-."}


def test_learning_rate_figures_draw_the_edge_of_stability_at_two_over_eta(tmp_path):
    """lambda_max settles near 2/eta: each learning rate's line at 2/lr in its colour (lambda_1 panels), NSGD's at
    2/(gamma lr) (its step along the top directions), one per trajectory panel."""
    runs, tables = seeded_study(tmp_path, {"grid": {"lr": [0.01, 0.05]}},
                                {"optimizer": {"name": "nsgd", "kk": 2}, "grid": {"optimizer.gamma": [5.0]}}, seeds=1)
    ax_1, ax_2 = plots.grid_figure(tables, "lr").axes[:2]
    edges = _edges(ax_1)
    assert set(edges) == {"2/η = 200", "2/η = 40"} and not _edges(ax_2)
    for lr, label in ((0.01, "2/η = 200"), (0.05, "2/η = 40")):
        assert edges[label][0] == pytest.approx(2 / lr)
        (curve,) = lines_labelled(ax_1, f"lr={lr:g}")
        assert np.allclose(edges[label][1], curve.get_color())
    bs_runs, bs_tables = seeded_study(tmp_path / "bs", {"grid": {"batch_size": [16, 32]}}, seeds=1)
    ax_bs, ax_bs_2 = plots.grid_figure(bs_tables, "batch_size").axes[:2]
    assert {label: y for label, (y, _) in _edges(ax_bs).items()} == {"2/η = 40": pytest.approx(40.0)}
    assert not _edges(ax_bs_2)
    ax_eig = plots.nsgd_gamma_figure(tables).axes[0]
    assert {label: y for label, (y, _) in _edges(ax_eig).items()} == {"2/γη = 8": pytest.approx(8.0),
                                                                       "2/η = 40": pytest.approx(40.0)}
    panels = [ax for ax in plots.spectrum_trajectory_figure(tables).axes if ax.get_lines()]
    heights = sorted(line.get_ydata()[0] for ax in panels for line in ax.get_lines() if line.get_linestyle() == "-.")
    assert heights == pytest.approx([8.0, 40.0, 200.0])  # the NSGD run, lr 0.05 (the grid's and NSGD's SGD), lr 0.01
    assert plots.stability_edge(0.1, momentum=0.9) == pytest.approx(38.0)  # heavy ball: 2 (1 + m) / lr


def test_one_seed_gamma_figure_draws_the_accuracys_binomial_error(tmp_path):
    runs, tables = seeded_study(tmp_path, {"optimizer": {"name": "nsgd", "kk": 2}, "grid": {"optimizer.gamma": [5.0]}},
                                {}, seeds=1)
    tables.runs["valid_size"] = 100
    ax_acc = plots.nsgd_gamma_figure(tables).axes[1]
    for label in ("γ=5", "γ=1 (SGD)"):
        (line,) = lines_labelled(ax_acc, label)
        accuracy = line.get_ydata()
        spread = np.sqrt(accuracy * (1 - accuracy) / 100)
        assert any(np.allclose(band.get_paths()[0].vertices[1:len(accuracy) + 1, 1], accuracy - spread)
                   for band in bands(ax_acc))
    assert "$\\pm$ 1 binomial standard error of the accuracy" in [
        t.get_text() for t in ax_acc.figure.legends[0].get_texts()]
