"""Study `large_batch`: the exact last-layer spectrum, the landscape command, the figures, and the workflow."""

import json
import math
import re

import matplotlib.colors
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import REPO, saved_model, snakemake, training_jobs, write_config
from hessian_spectra import cli, layout
from hessian_spectra.checkpoint import model_spec
from hessian_spectra.curvature import dense_hessian, make_batches
from hessian_spectra.data import save_subset
from hessian_spectra.plots.large_batch import symlog_threshold
from hessian_spectra.runs import load_yaml, plan_runs, plan_subsets
from hessian_spectra.spectrum import COLUMNS, result_row
from hessian_spectra.tables import write_rows

SPEC = model_spec("tf_cnn", 1, 16, 10, {"width": 0.0625})
TINY = REPO / "tests" / "configs" / "tiny.yaml"
SCHEMA = load_yaml(REPO / "workflow" / "schemas" / "config.schema.yaml")


@pytest.fixture
def checkpoint(tmp_path):
    """A tiny tf_cnn checkpoint, its Hessian subset (40 samples) and the model."""
    torch.manual_seed(0)
    model = saved_model(SPEC, tmp_path / "final.pt", epoch=3)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.rand(40, 1, 16, 16, generator=gen), torch.randint(0, 10, (40,), generator=gen)
    save_subset(tmp_path / "subset.pt", x, y, torch.arange(40), {"split": "train"})
    return tmp_path, model, x, y


def spectrum_cli(tmp_path, *extra):
    args = ["spectrum", "--checkpoint", str(tmp_path / "final.pt"), "--data", str(tmp_path / "subset.pt")]
    args += ["--out", str(tmp_path / "spectrum.tsv"), "--npz", str(tmp_path / "spectrum.npz"), "--batch-size", "16"]
    assert cli.main(args + list(extra)) == 0


def test_dense_last_layer_eigenvalues_equal_eigvalsh_of_the_dense_hessian(checkpoint):
    tmp_path, model, x, y = checkpoint
    spectrum_cli(
        tmp_path,
        "--params",
        "last_layer",
        "--dense",
        "--max-lanes",
        "64",
        "--top-k",
        "20",
        "--eigenvectors",
        "--dtype",
        "float64",
    )
    H = dense_hessian(model, make_batches(x, y, 16), params=["dense3.weight"])
    expected = torch.linalg.eigvalsh(H).flip(0).numpy()
    with np.load(tmp_path / "spectrum.npz") as npz:
        values, vectors = npz["eigenvalues"], npz["eigenvectors"]
        assert npz["param_names"].tolist() == ["dense3.weight"]
    assert values.shape == expected.shape == (model.dense3.weight.numel(),)
    np.testing.assert_allclose(values, expected, rtol=0, atol=1e-10 * abs(expected).max())
    assert vectors.shape == (len(values), 20)
    np.testing.assert_allclose(H.numpy() @ vectors, vectors * values[:20], atol=1e-9 * abs(expected).max())
    table = pd.read_csv(tmp_path / "spectrum.tsv", sep="\t")
    assert (table["block"] == "dense3.weight").all()
    # converged means a relative residual within the tolerance: every top eigenvalue; not the numerically zero
    # tail of a rank-deficient block, whose relative residual is rounding noise over a rounding-noise eigenvalue
    assert table["converged"].eq(table["relative_residual"] <= table["tolerance"]).all()
    assert table["converged"].iloc[:20].all()


def test_landscape_command_centre_is_the_checkpoints_loss(checkpoint):
    tmp_path, model, x, y = checkpoint
    spectrum_cli(tmp_path, "--params", "last_layer", "--dense", "--max-lanes", "64", "--top-k", "2", "--eigenvectors")
    out = tmp_path / "landscape.tsv"
    args = ["landscape", "--checkpoint", str(tmp_path / "final.pt"), "--data", str(tmp_path / "subset.pt")]
    args += ["--out", str(out), "--eigenvectors", str(tmp_path / "spectrum.npz"), "--grid-points", "5"]
    args += ["--extent", "0.2", "--batch-size", "16", "--random-params", "all", "--dtype", "float64"]
    assert cli.main(args) == 0
    table = pd.read_csv(out, sep="\t")
    assert len(table) == 2 * 25 and table.groupby("direction").size().to_dict() == {"eigen": 25, "random": 25}
    model = model.double().eval()
    with torch.no_grad():
        expected = torch.nn.functional.cross_entropy(model(x.double()), y).item()
    centre = table[(table["c1"] == 0) & (table["c2"] == 0)]
    assert len(centre) == 2
    np.testing.assert_allclose(centre["loss"], expected, rtol=1e-12)
    eigen, random = table[table["direction"] == "eigen"], table[table["direction"] == "random"]
    assert set(eigen["space"]) == {"dense3.weight"} and set(random["space"]) == {"full"}
    with np.load(tmp_path / "spectrum.npz") as npz:
        np.testing.assert_allclose(eigen["lambda1"], npz["eigenvalues"][0])
        np.testing.assert_allclose(eigen["lambda2"], npz["eigenvalues"][1])
        np.testing.assert_allclose(eigen[["residual1", "residual2"]].iloc[0], npz["residuals"][:2])
    assert random[["lambda1", "lambda2", "residual1", "residual2"]].isna().all().all()
    assert (table["loss"] > 0).all() and table["accuracy"].between(0, 1).all()


def test_landscape_command_refuses_eigen_directions_without_eigenvectors(checkpoint):
    tmp_path, *_ = checkpoint
    np.savez(tmp_path / "spectrum.npz", eigenvalues=np.ones(3), param_names=np.array(["dense3.weight"]))
    args = ["landscape", "--checkpoint", str(tmp_path / "final.pt"), "--data", str(tmp_path / "subset.pt")]
    args += ["--out", str(tmp_path / "landscape.tsv"), "--grid-points", "3"]
    assert cli.main(args) == 2
    assert cli.main(args + ["--eigenvectors", str(tmp_path / "spectrum.npz")]) == 2
    assert not (tmp_path / "landscape.tsv").exists()


def test_symlog_threshold_puts_every_nonzero_eigenvalue_on_the_log_part():
    assert symlog_threshold(np.array([12.0, 0.5, 3e-3, -2e-2, 0.0])) == 1e-3
    assert symlog_threshold(np.array([5.0, 4.0])) == 1.0
    assert symlog_threshold(np.array([0.0, math.nan])) == 1.0
    assert symlog_threshold(np.array([100.0, 1e-20])) == 1e-6  # at most 8 decades below the largest


def fake_run(root, batch_size, seed=0, eigenvalues=None, scale=1.0, residual=1e-6, final_loss=0.1) -> dict:
    """A run's run.json, history, both spectrum tables and its landscape table at their workflow paths below
    ``root`` (``layout``), as the workflow writes them; returns those paths relative to ``root`` (run from there).
    Eigenvalues are ``eigenvalues`` or a geometric ramp times ``scale``; ``residual`` is the converged ones'; a
    ``final_loss`` above the initial 2.3 makes the run diverged."""
    key = f"large_batch/runs/tf_cnn/digits/bs{batch_size}/seed{seed}/sgd"
    files = {"run": layout.run_files(key).run_json, "history": layout.run_files(key).history,
             "landscape": layout.landscape(key)}
    files.update({hessian: layout.final_spectrum(key, hessian, "tsv") for hessian in ("last_layer", "full")})
    for path in files.values():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
    files["key"] = key
    run = {"key": key, "batch_size": batch_size, "seed": seed, "variant": "sgd", "dataset": "digits"}
    (root / files["run"]).write_text(json.dumps(run))
    steps = 100 + 10 * seed
    (root / files["history"]).write_text(
        f"epoch\tsteps\ttrain_loss\ttest_acc\n0\t0\t2.3\t0.1\n10\t{steps}\t{final_loss}\t0.9\n")
    for hessian, block, n in (("last_layer", "dense3.weight", 30), ("full", "full", 6)):
        values = eigenvalues if eigenvalues is not None else np.geomspace(10.0, 0.01, n) * batch_size * scale
        rows = [
            {"epoch": 10, **result_row(block, "eigenvalue", i, value, tolerance=1e-3, products=40,
                                       residual=residual * abs(value) if i < 5 or hessian != "full" else abs(value))}
            for i, value in enumerate(values, start=1)
        ]
        rows.append({"epoch": 10, **result_row(block, "trace", 0, 99.0, stderr=0.1, probes=40, products=40)})
        write_rows(root / files[hessian], COLUMNS, rows)
    coords = np.linspace(-0.3, 0.3, 5)
    rows = [
        {
            "epoch": 10,
            "direction": kind,
            "space": "dense3.weight",
            "i": i,
            "j": j,
            "c1": a,
            "c2": b,
            "loss": 0.1 + scale * a**2 + b**2,
            "accuracy": 0.9,
            "lambda1": 2 * scale if kind == "eigen" else math.nan,
            "lambda2": 2.0 if kind == "eigen" else math.nan,
        }
        for kind, scale in (("eigen", 5.0), ("random", 1.0))
        for i, a in enumerate(coords)
        for j, b in enumerate(coords)
    ]
    pd.DataFrame(rows).to_csv(root / files["landscape"], sep="\t", index=False)
    return files


def table_args(runs: list[dict], out) -> list[str]:
    """``large-batch table`` of the ``fake_run`` runs, top 20."""
    spectra = [run[hessian] for run in runs for hessian in ("last_layer", "full")]
    args = ["large-batch", "table", "--runs", *(run["run"] for run in runs)]
    args += ["--histories", *(run["history"] for run in runs), "--spectra", *spectra]
    return args + ["--top-k", "20", "--out", str(out)]


def test_spectral_figure_and_its_table(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = [
        fake_run(tmp_path, 16),
        fake_run(tmp_path, 256),
        fake_run(tmp_path, 256, seed=1, eigenvalues=[3.0, -0.5, 0.0, 1e-4]),
    ]
    figure, table = tmp_path / "hessian_spectral.png", tmp_path / "top.tsv"
    assert cli.main(table_args(runs, table)) == 0
    args = ["large-batch", "spectral", "--table", str(table), "--hessians", "last_layer", "full"]
    assert cli.main(args + ["--out", str(figure)]) == 0
    assert figure.stat().st_size > 10_000
    plotted = pd.read_csv(table, sep="\t")
    assert plotted.groupby(["batch_size", "hessian"]).size().to_dict() == {
        (16, "full"): 6,
        (16, "last_layer"): 20,
        (256, "full"): 6 + 4,
        (256, "last_layer"): 20 + 4,
    }
    assert (plotted["index"] <= 20).all() and not plotted["converged"].all()
    assert plotted.columns[:4].tolist() == ["run", "seed", "batch_size", "steps"]
    assert plotted.groupby("run")[["seed", "steps"]].first().to_dict("index") == {
        run["key"]: {"seed": seed, "steps": 100 + 10 * seed} for run, seed in zip(runs, (0, 0, 1))
    }


def bands(ax) -> list:
    """The fill_between bands of ``ax``."""
    from matplotlib.collections import PolyCollection

    return [c for c in ax.collections if isinstance(c, PolyCollection)]


def test_spectral_figure_draws_the_mean_over_seeds_with_their_range(tmp_path, monkeypatch):
    """Two seeds of batch size 16 are one line, their mean, in a band from the lower to the higher seed; a red X
    sits on the mean where either seed is not converged; batch size 256 (one seed) has no band."""
    from hessian_spectra.plots.common import UNCONVERGED
    from hessian_spectra.plots.large_batch import spectral_figure

    monkeypatch.chdir(tmp_path)
    runs = [fake_run(tmp_path, 16), fake_run(tmp_path, 16, seed=1, scale=3.0), fake_run(tmp_path, 256)]
    assert cli.main(table_args(runs, tmp_path / "top.tsv")) == 0
    table = pd.read_csv(tmp_path / "top.tsv", sep="\t")
    assert sorted(table.loc[table["batch_size"] == 16, "seed"].unique()) == [0, 1]
    unconverged = (table["run"] == runs[1]["key"]) & (table["hessian"] == "last_layer") & (table["index"] == 3)
    table.loc[unconverged, "converged"] = False
    ax = spectral_figure(table, ["last_layer"]).axes[0]
    seeds = table[(table["batch_size"] == 16) & (table["hessian"] == "last_layer")].pivot(
        index="index", columns="seed", values="value")
    lines = [line for line in ax.get_lines() if len(line.get_xdata()) == 20]
    assert len(lines) == 2
    (line,) = [line for line in lines if np.allclose(line.get_ydata(), seeds.mean(axis=1))]
    np.testing.assert_array_equal(line.get_xdata(), seeds.index)
    (band,) = bands(ax)
    corners = {tuple(np.round(v, 9)) for path in band.get_paths() for v in path.vertices}
    for i in seeds.index:
        assert (i, round(seeds.loc[i].min(), 9)) in corners and (i, round(seeds.loc[i].max(), 9)) in corners
    crosses = [c for c in ax.collections if c.get_paths() and len(c.get_offsets()) and
               np.allclose(c.get_facecolor()[0][:3], matplotlib.colors.to_rgb(UNCONVERGED["color"]))]
    offsets = np.concatenate([c.get_offsets() for c in crosses])
    assert [3.0, seeds.loc[3].mean()] in offsets.tolist()
    assert any("2 seeds" in text.get_text() for text in ax.figure.legends[0].get_texts())


def test_a_diverged_seed_is_marked_in_the_table_and_left_out_of_the_mean(tmp_path, monkeypatch):
    from hessian_spectra.plots.large_batch import spectral_figure

    monkeypatch.chdir(tmp_path)
    runs = [fake_run(tmp_path, 16), fake_run(tmp_path, 16, seed=1, scale=3.0, final_loss=5.0)]
    assert cli.main(table_args(runs, tmp_path / "top.tsv")) == 0
    table = pd.read_csv(tmp_path / "top.tsv", sep="\t", true_values=["true"], false_values=["false"])
    flags = table.groupby("seed")[["diverged", "diverged_because"]].first()
    assert flags["diverged"].tolist() == [False, True]
    assert flags.loc[1, "diverged_because"] == "training loss rose from 2.3 to 5"
    fig = spectral_figure(table, ["last_layer"])
    ax = fig.axes[0]
    kept = table[(table["seed"] == 0) & (table["hessian"] == "last_layer")]["value"].to_numpy()
    apart = table[(table["seed"] == 1) & (table["hessian"] == "last_layer")]["value"].to_numpy()
    ys = [line.get_ydata() for line in ax.get_lines()]
    assert any(np.allclose(y, kept) for y in ys) and any(np.allclose(y, apart) for y in ys)
    assert not bands(ax)
    labels = [text.get_text() for text in fig.legends[0].get_texts()]
    assert any("seed 1 DIVERGED: training loss rose" in label for label in labels)


def test_spectral_figure_of_one_seed_draws_no_band(tmp_path, monkeypatch):
    from hessian_spectra.plots.large_batch import spectral_figure

    monkeypatch.chdir(tmp_path)
    runs = [fake_run(tmp_path, 16), fake_run(tmp_path, 256)]
    assert cli.main(table_args(runs, tmp_path / "top.tsv")) == 0
    fig = spectral_figure(pd.read_csv(tmp_path / "top.tsv", sep="\t"), ["last_layer", "full"])
    assert all(not bands(ax) and len(ax.get_lines()) == 2 for ax in fig.axes)
    assert not any("seeds" in text.get_text() for text in fig.legends[0].get_texts())


@pytest.mark.parametrize("kind", ["surface", "contour"])
def test_surface_figure_has_a_row_per_run(tmp_path, kind):
    runs = [fake_run(tmp_path, 256), fake_run(tmp_path, 256, seed=1)]
    surface = tmp_path / "loss_surface_bs256.png"
    args = ["large-batch", "surface", "--runs", *(str(tmp_path / run["run"]) for run in runs), "--landscapes"]
    args += [str(tmp_path / run["landscape"]) for run in runs] + ["--kind", kind, "--out", str(surface)]
    assert cli.main(args) == 0
    assert surface.stat().st_size > 10_000


def test_surface_rows_are_labelled_with_their_seed_when_there_are_several(tmp_path):
    from hessian_spectra.commands.large_batch import collect_landscapes

    runs = [fake_run(tmp_path, 256), fake_run(tmp_path, 256, seed=1)]
    run_json = [json.loads((tmp_path / run["run"]).read_text()) for run in runs]
    landscapes = [str(tmp_path / run["landscape"]) for run in runs]
    labels = collect_landscapes(run_json, landscapes)["label"].unique().tolist()
    assert labels == ["batch size 256, seed 0", "batch size 256, seed 1"]
    assert collect_landscapes(run_json[:1], landscapes[:1])["label"].unique().tolist() == ["batch size 256"]


@pytest.mark.parametrize("kind", ["surface", "contour"])
def test_each_loss_surface_panel_has_its_own_colour_scale_and_marks_theta_and_the_grid_minimum(tmp_path, kind):
    """A sharp bowl beside a flat one: each panel's colour bar (and z axis) spans its own losses, so neither is
    flattened by the other's range; each panel marks theta at (0, 0) and its own lowest grid point."""
    from hessian_spectra.commands.large_batch import collect_landscapes
    from hessian_spectra.plots.large_batch import surface_figure

    run = fake_run(tmp_path, 256)
    path = tmp_path / run["landscape"]
    table = pd.read_csv(path, sep="\t")
    table.loc[table["direction"] == "eigen", "loss"] *= 100.0  # a bowl 100 times deeper than the random one
    table.to_csv(path, sep="\t", index=False)
    landscape = collect_landscapes([json.loads((tmp_path / run["run"]).read_text())], [str(path)])
    fig = surface_figure(landscape, kind)
    panels = [ax for ax in fig.axes if ax.get_xlabel() == "$c_1$"]
    colorbars = [ax for ax in fig.axes if ax.get_ylabel() == "training loss"]
    assert len(panels) == len(colorbars) == 2
    limits = []
    for ax, bar, direction in zip(panels, colorbars, ("eigen", "random")):
        rows = landscape[landscape["direction"] == direction]
        own = (rows["loss"].min(), rows["loss"].max())
        np.testing.assert_allclose(bar.get_ylim(), own)
        if kind == "surface":
            np.testing.assert_allclose(ax.get_zlim(), own)
        limits.append(own)
        best = rows.loc[rows["loss"].idxmin(), ["c1", "c2"]].to_numpy(float)
        if kind == "contour":
            marked = [tuple(c.get_offsets()[0]) for c in ax.collections if len(c.get_offsets()) == 1]
        else:
            marked = [tuple(np.asarray(c._offsets3d)[:2, 0]) for c in ax.collections if hasattr(c, "_offsets3d")]
        assert (0.0, 0.0) in marked and tuple(best) in marked
        assert f"max {rows['loss'].max():.3g}" in ax.get_title()
    assert limits[0][1] > 50 * limits[1][1]  # the eigen panel's range would flatten the random one


def planned_jobs(output: str) -> dict[str, int]:
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)$", output, flags=re.M) if rule != "total"}


def only_large_batch(config: dict) -> dict:
    for study in config["studies"]:
        if study != "large_batch":
            config["studies"][study]["enabled"] = False
    return config


def test_default_run_plans_one_spectrum_per_run_and_hessian(tmp_path, default_config):
    config = only_large_batch(default_config)
    result = snakemake(tmp_path, "-n", configfile=write_config(tmp_path / "config.yaml", config))
    assert result.returncode == 0, result.stderr
    planned = plan_runs(config, SCHEMA)
    runs = planned.values()
    assert planned_jobs(result.stdout) == {
        **training_jobs(runs),
        "hessian_subset": len(plan_subsets(planned)),
        "large_batch_spectrum": len(runs) * len(config["studies"]["large_batch"]["spectrum"]["hessians"]),
        "large_batch_landscape": len(runs),
        "large_batch_table": 1,
        "large_batch_spectral_figure": 1,
        "large_batch_surface_figure": len({run["batch_size"] for run in runs}),
        "findings": 1,
        "report_table": 1,  # the report's page of top_eigenvalues.tsv
        "report_scorecard": 1,
        "all": 1,
    }


@pytest.mark.slow
def test_tiny_workflow_draws_every_figure(tiny_run):
    tmp_path = tiny_run
    config = only_large_batch(yaml.safe_load(TINY.read_text()))
    figures = tmp_path / "results" / "figures" / "large_batch"
    sizes = {run["batch_size"] for run in plan_runs(config, SCHEMA).values()}
    names = ["hessian_spectral.png"] + [f"loss_surface_bs{size}.png" for size in sizes]
    for name in names:
        assert (figures / name).stat().st_size > 10_000, name
    table = pd.read_csv(tmp_path / "results" / "tables" / "large_batch" / "top_eigenvalues.tsv", sep="\t")
    top_k = config["studies"]["large_batch"]["spectrum"]["top_k"]
    assert table.groupby(["batch_size", "hessian"]).size().eq(top_k).all()
    landscape = tmp_path / layout.landscape(next(iter(plan_runs(config, SCHEMA))))
    grid = config["studies"]["large_batch"]["landscape"]["grid_points"]
    assert len(pd.read_csv(landscape, sep="\t")) == 2 * grid**2
