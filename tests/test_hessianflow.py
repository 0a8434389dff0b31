"""Study `hessianflow`: power iteration and Lanczos agree (with the dense Hessian) where lambda_1 is well
separated, the study's table, the table and figure commands need no torch, and a tiny workflow run draws every
figure (slow)."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import matplotlib.colors
import numpy as np
import pytest
import torch
import yaml

from conftest import REPO, saved_model
from hessian_spectra import cli, layout
from hessian_spectra.checkpoint import model_spec
from hessian_spectra.curvature import dense_hessian, make_batches
from hessian_spectra.data import save_subset
from hessian_spectra.layout import RunFiles
from hessian_spectra.runs import load_yaml, plan_runs
from hessian_spectra.spectrum import COLUMNS

SCHEMA = load_yaml(REPO / "workflow" / "schemas" / "config.schema.yaml")
TINY = REPO / "tests" / "configs" / "tiny.yaml"
FIGURES = ("dominant_eigenvalue", "absa_schedule", "esd_final")
SPEC = model_spec("mlp", 1, 2, 2, {"hidden": []})  # softmax regression on 4 features, 2 classes


@pytest.fixture(autouse=True)
def restore_threads():
    """The commands run in-process set torch's thread count; give the next tests theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _read(path) -> list[dict]:
    with open(path) as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


@pytest.fixture
def separated_run(tmp_path):
    """A run directory whose Hessians have lambda_2 / lambda_1 < 0.1: one input feature has 10x the scale."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(96, 1, 2, 2, generator=gen) * torch.tensor([10.0, 1.0, 1.0, 1.0]).view(1, 1, 2, 2)
    y = torch.randint(0, 2, (96,), generator=gen)
    save_subset(tmp_path / "subset.pt", x, y, torch.arange(96), {"split": "test"})
    files = RunFiles(str(tmp_path / "run"))
    models = []
    for epoch in range(3):
        torch.manual_seed(epoch)
        models.append(saved_model(SPEC, Path(files.checkpoint(epoch)), epoch))
    Path(files.run_json).write_text(json.dumps({"epochs": 2, "key": "test/run"}))
    return tmp_path, models, make_batches(x, y, 40)


def _walk_args(root) -> list[str]:
    """--run-json, --checkpoints and --subset of the ``separated_run`` directory."""
    files = RunFiles(str(root / "run"))
    return ["--run-json", files.run_json, "--checkpoints", *files.checkpoints(2), "--subset", str(root / "subset.pt")]


def test_power_iteration_and_lanczos_agree_when_the_top_eigenvalue_is_separated(separated_run):
    run_dir, models, batches = separated_run
    out = run_dir / "dominant_eigen.tsv"
    assert cli.main(["hessianflow", "eigen", *_walk_args(run_dir), "--out", str(out), "--batch-size", "40",
                     "--threads", "1"]) == 0
    rows = _read(out)
    assert [(int(r["epoch"]), r["quantity"]) for r in rows] == [
        (e, q) for e in range(3) for q in ("eigenvalue", "power_eigenvalue")
    ]
    for epoch, model in enumerate(models):
        exact = torch.linalg.eigvalsh(dense_hessian(model, batches)).flip(0).numpy()
        assert exact[1] < 0.1 * exact[0], "the test needs a well-separated top eigenvalue"
        lanczos, power = (next(r for r in rows if int(r["epoch"]) == epoch and r["quantity"] == q)
                          for q in ("eigenvalue", "power_eigenvalue"))
        assert lanczos["converged"] == "true" and float(lanczos["residual"]) <= 1e-4 * exact[0]
        assert float(lanczos["value"]) == pytest.approx(exact[0], rel=1e-5)
        assert float(power["value"]) == pytest.approx(float(lanczos["value"]), rel=1e-3)
        assert int(power["products"]) <= 10 and np.isfinite(float(power["residual"]))
        for row in (lanczos, power):  # converged: the relative residual within the stated tolerance, nothing else
            relative = float(row["residual"]) / abs(float(row["value"]))
            assert float(row["relative_residual"]) == pytest.approx(relative)
            assert (row["converged"] == "true") == (relative <= float(row["tolerance"]))
        assert power["stopped"] in ("true", "false") and lanczos["stopped"] == ""


def test_dominant_eigen_names_a_missing_checkpoint(separated_run, caplog):
    run_dir, _, _ = separated_run
    missing = Path(RunFiles(str(run_dir / "run")).checkpoint(1))
    missing.unlink()
    out = run_dir / "dominant_eigen.tsv"
    with caplog.at_level("ERROR"):
        assert cli.main(["hessianflow", "eigen", *_walk_args(run_dir), "--out", str(out), "--threads", "1"]) == 2
    assert not out.exists()
    (error,) = [record.getMessage() for record in caplog.records if record.levelname == "ERROR"]
    assert "\n" not in error and str(missing) in error


def test_dominant_eigen_names_an_unreadable_checkpoint(separated_run, caplog):
    run_dir, _, _ = separated_run
    damaged = Path(RunFiles(str(run_dir / "run")).checkpoint(1))
    damaged.write_bytes(damaged.read_bytes()[:100])
    out = run_dir / "dominant_eigen.tsv"
    with caplog.at_level("ERROR"):
        assert cli.main(["hessianflow", "eigen", *_walk_args(run_dir), "--out", str(out), "--threads", "1"]) == 2
    assert not out.exists()
    (error,) = [record.getMessage() for record in caplog.records if record.levelname == "ERROR"]
    assert "\n" not in error and str(damaged) in error and "checkpoint" in error


def _fake_run(root, model: str, optimizer: str, epochs: int = 3, loss_growth: float = 0.5, seed: int = 0,
              offset: float = 0.0):
    """A run directory with the tables the figure command reads (no checkpoints); its training loss is multiplied
    by ``loss_growth`` every epoch (above 1: a diverging run); ``offset`` is added to its eigenvalues and traces
    (and a hundredth of it to its accuracies), so seeds differ. An ABSA run's history has its schedule's lambda
    (20 + epoch + offset) after every epoch but the last."""
    run_dir = root / model / f"seed{seed}" / optimizer
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps(
        {"model": model, "optimizer": {"name": optimizer}, "variant": optimizer,
         "key": f"{model}/seed{seed}/{optimizer}", "seed": seed, "dataset": "digits"}))
    header = "epoch\tlr\tbatch_size\ttrain_loss\ttest_acc" + ("\tlambda\n" if optimizer == "absa" else "\n")
    (run_dir / "history.tsv").write_text(header + "".join(
        f"{e}\t{0.1 * 2**e}\t{16 * 2**e}\t{2.3 * loss_growth**e}\t{0.5 + e / 10 + offset / 100}"
        + (f"\t{20.0 + e + offset if 0 < e < epochs else 'nan'}\n" if optimizer == "absa" else "\n")
        for e in range(epochs + 1)))
    columns = "\t".join(COLUMNS) + "\n"
    (run_dir / "dominant_eigen.tsv").write_text(columns + "".join(
        f"{e}\tfull\t{q}\t1\t{v}\tnan\t\t0.1\t{0.1 / abs(v)}\t0.01\t{'true' if e else 'false'}\t\t9\n"
        for e in range(epochs + 1)
        for q, v in (("eigenvalue", 10.0 + e + offset), ("power_eigenvalue", 9.0 - 5 * e + offset))))
    (run_dir / "final_trace_density.tsv").write_text(
        columns
        + f"3\tfull\ttrace\t0\t{42.0 + offset}\t1.5\t50\tnan\tnan\tnan\t\t\t50\n"
        + f"3\tfull\tdensity_trace\t0\t{40.0 + offset}\tnan\t1\tnan\tnan\tnan\t\t\t60\n"
    )
    grid = np.linspace(-1.0, 11.0, 64)
    np.savez(run_dir / "final_trace_density.npz", blocks=np.array(["full"]), grid_0=grid,
             density_0=np.exp(-(grid - offset)**2))
    return run_dir


NAMES = {"runs": "run.json", "histories": "history.tsv", "eigen": "dominant_eigen.tsv",
         "final": "final_trace_density.tsv", "densities": "final_trace_density.npz"}


def _collect(runs):
    """``collect`` of ``_fake_run`` directories: (eigen, history, density, trace)."""
    from hessian_spectra.studies.hessianflow.table import collect

    return collect(*([str(run / name) for run in runs] for name in NAMES.values()))


def _bands(ax) -> list:
    from matplotlib.collections import PolyCollection

    return [c for c in ax.collections if isinstance(c, PolyCollection)]


def _run_tables(runs, names=NAMES) -> list[str]:
    """The flags naming every run's tables (``--runs``, ``--histories``, ...) for the ``names`` of ``NAMES``."""
    return [item for option in names for item in (f"--{option}", *(str(run / NAMES[option]) for run in runs))]


def test_figure_and_table_commands_need_no_torch(tmp_path):
    runs = [_fake_run(tmp_path, model, optimizer) for model in ("c1", "resnet20") for optimizer in ("sgd", "absa")]
    outputs = {name: tmp_path / "figures" / f"{name}.png" for name in FIGURES}
    figures = ["hessianflow", "figures", *_run_tables(runs)]
    figures += [item for name in FIGURES for item in (f"--{name.replace('_', '-')}", str(outputs[name]))]
    table = ["hessianflow", "table", *_run_tables(runs, [name for name in NAMES if name != "densities"]),
             "--out", str(tmp_path / "dominant_eigenvalue.tsv")]
    code = (
        "import sys\n"
        "from hessian_spectra.cli import main\n"
        f"code = main({figures!r}) or main({table!r})\n"
        "assert 'torch' not in sys.modules, 'the figure or table command imported torch'\n"
        "sys.exit(code)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for path in outputs.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    rows = _read(tmp_path / "dominant_eigenvalue.tsv")
    assert len(rows) == 4 * (2 * 4 + 2)  # per run: 2 estimates x 4 epochs, 2 final traces


def test_the_study_table_holds_both_estimates_per_epoch_and_the_final_traces(tmp_path):
    from hessian_spectra.studies.hessianflow.table import RUN_COLUMNS, build_table

    runs = [_fake_run(tmp_path, "c1", "sgd"), _fake_run(tmp_path, "c1", "absa", seed=1, loss_growth=1.5, offset=2.0)]
    table = build_table(*([str(run / NAMES[name]) for run in runs] for name in ("runs", "histories", "eigen", "final")))
    assert table.columns.tolist() == RUN_COLUMNS + list(COLUMNS)
    assert table["run"].unique().tolist() == ["c1/seed0/sgd", "c1/seed1/absa"]
    sgd, absa = (table[table["run"] == key].set_index(["epoch", "quantity"]) for key in table["run"].unique())
    for rows, offset in ((sgd, 0.0), (absa, 2.0)):
        for epoch in range(4):
            lanczos, power = rows.loc[(epoch, "eigenvalue")], rows.loc[(epoch, "power_eigenvalue")]
            assert lanczos["value"] == 10.0 + epoch + offset and power["value"] == 9.0 - 5 * epoch + offset
            assert lanczos["residual"] == 0.1 and lanczos["relative_residual"] == pytest.approx(0.1 / lanczos["value"])
        trace, density_trace = rows.loc[(3, "trace")], rows.loc[(3, "density_trace")]
        assert (trace["value"], trace["stderr"], trace["probes"]) == (42.0 + offset, 1.5, 50)
        assert density_trace["value"] == 40.0 + offset
    assert not sgd["diverged"].any() and set(sgd["diverged_because"]) == {""}
    assert absa["diverged"].all() and absa["diverged_because"].str.startswith("training loss rose").all()
    assert set(table["label"]) == {"SGD", "ABSA"} and set(table["block"]) == {"full"}


def test_the_study_table_wants_one_table_of_each_kind_per_run(tmp_path):
    from hessian_spectra.studies.hessianflow.table import build_table

    runs = [_fake_run(tmp_path, "c1", "sgd"), _fake_run(tmp_path, "c1", "absa")]
    files = {name: [str(run / NAMES[name]) for run in runs] for name in ("runs", "histories", "eigen", "final")}
    files["final"] = files["final"][:1]
    with pytest.raises(ValueError, match="per run.json"):
        build_table(*files.values())


def test_a_diverged_run_is_drawn_apart_in_the_dominant_eigenvalue_figure(tmp_path):
    from hessian_spectra.plots.hessianflow import DIVERGED_COLOUR, dominant_eigenvalue_figure

    runs = [_fake_run(tmp_path, "c1", "sgd"), _fake_run(tmp_path, "c1", "absa", loss_growth=1.5)]
    eigen, history, *_ = _collect(runs)
    assert eigen.groupby("label")["diverged"].first().str.startswith("training loss rose").to_dict() == {
        "ABSA": True, "SGD": False}
    (legend,) = dominant_eigenvalue_figure(eigen, history).legends
    labels = {text.get_text(): line.get_color() for text, line in zip(legend.get_texts(), legend.get_lines())}
    assert labels["SGD"] != DIVERGED_COLOUR
    (absa,) = [label for label in labels if label.startswith("ABSA DIVERGED: training loss rose")]
    assert labels[absa] == DIVERGED_COLOUR


def _legend(fig):
    """The figure's legend (its own, or on one of its axes)."""
    (legend,) = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    return legend


def _colour_of(ax, legend_label: str, linestyle: str = "-") -> list:
    """The lines of ``ax`` in the colour of ``legend_label``'s entry in the figure's legend, in ``linestyle``."""
    legend = _legend(ax.figure)
    colour = {t.get_text(): h.get_color() for t, h in zip(legend.get_texts(), legend.legend_handles)
              if hasattr(h, "get_color")}[legend_label]
    return [line for line in ax.get_lines()
            if np.allclose(matplotlib.colors.to_rgb(line.get_color()), matplotlib.colors.to_rgb(colour))
            and line.get_linestyle() == linestyle]


def test_figures_draw_the_mean_over_seeds_and_a_diverged_seed_apart(tmp_path):
    from hessian_spectra.plots.hessianflow import absa_schedule_figure, dominant_eigenvalue_figure, esd_final_figure

    runs = [_fake_run(tmp_path, "c1", "sgd", seed=seed, offset=2.0 * seed) for seed in (0, 1)]
    runs += [_fake_run(tmp_path, "c1", "absa", seed=0), _fake_run(tmp_path, "c1", "absa", seed=1, loss_growth=1.5)]
    eigen, history, density, trace = _collect(runs)
    ax, gap_ax = dominant_eigenvalue_figure(eigen, history).axes
    epochs = np.arange(4)
    (sgd,) = _colour_of(ax, "SGD")
    np.testing.assert_allclose(sgd.get_ydata(), 10.0 + epochs + 1.0)  # the mean of offsets 0 and 2
    (absa,) = _colour_of(ax, "ABSA")
    np.testing.assert_allclose(absa.get_ydata(), 10.0 + epochs)  # seed 0 alone: seed 1 diverged
    (apart,) = _colour_of(ax, "ABSA, seed 1 DIVERGED: training loss rose from 2.3 to 7.76")
    np.testing.assert_allclose(apart.get_ydata(), 10.0 + epochs)
    # ABSA's own schedule lambda, dotted, where its history has one (epochs 1 and 2): seed 0's, and seed 1's apart
    schedule = [line.get_ydata().tolist() for line in ax.get_lines() if line.get_linestyle() == ":"]
    assert sorted(schedule) == [[21.0, 22.0], [21.0, 22.0]]
    assert len(_bands(ax)) == 1  # SGD's Lanczos; one ABSA seed left: no band
    band = _bands(ax)[0].get_paths()[0].vertices
    assert band[:, 1].min() == pytest.approx(10.0) and band[:, 1].max() == pytest.approx(15.0)
    crosses = np.concatenate([c.get_offsets() for c in ax.collections if c not in _bands(ax)
                              and np.allclose(c.get_facecolor()[0][:3], matplotlib.colors.to_rgb("crimson"))])
    assert crosses.tolist() == [[0.0, 11.0], [0.0, 10.0], [0.0, 10.0]]  # epoch 0's Lanczos is unconverged
    # power iteration (9 - 5e) as its gap to Lanczos (10 + e), in percent: the mean over SGD's two seeds
    (sgd_gap,) = _colour_of(gap_ax, "SGD", "--")
    gaps = [100 * (-1 - 6 * epochs) / (10 + epochs + offset) for offset in (0.0, 2.0)]
    np.testing.assert_allclose(sgd_gap.get_ydata(), np.mean(gaps, axis=0))
    (gap_band,) = _bands(gap_ax)
    assert gap_band.get_paths()[0].vertices[:, 1].min() == pytest.approx(np.min(gaps))
    texts = [t.get_text() for t in _legend(ax.figure).get_texts()]
    assert "range over 2 seeds (line: mean)" in texts and any(t.startswith("ABSA's schedule") for t in texts)

    schedule = absa_schedule_figure(history)
    assert len(schedule.axes[0].get_lines()) == 4  # a batch-size line per run
    (accuracy,) = _colour_of(schedule.axes[2], "SGD")
    np.testing.assert_allclose(accuracy.get_ydata(), 0.5 + epochs / 10 + 0.01)
    assert len(_bands(schedule.axes[2])) == 2  # SGD's two seeds' range; ABSA's one seed: its binomial error

    esd = esd_final_figure(density, trace).axes[0]
    texts = [t.get_text() for t in esd.get_legend().get_texts()]
    assert texts[0] == ("SGD: trace mean 43 over 2 seeds (range 42 to 44)\n"
                        "density's trace mean 41 over 2 seeds (range 40 to 42)")
    assert texts[2].startswith("ABSA, seed 1 DIVERGED") and "trace 42 $\\pm$ 1.5 (50 probes)" in texts[2]
    assert len(esd.get_lines()) == 4  # a density per run


def test_figures_of_one_seed_draw_no_band(tmp_path):
    from hessian_spectra.plots.hessianflow import absa_schedule_figure, dominant_eigenvalue_figure, esd_final_figure

    eigen, history, density, trace = _collect([_fake_run(tmp_path, "c1", name) for name in ("sgd", "absa")])
    figures = [dominant_eigenvalue_figure(eigen, history), absa_schedule_figure(history),
               esd_final_figure(density, trace)]
    assert not any(_bands(ax) for fig in (figures[0], figures[2]) for ax in fig.axes)
    assert not _bands(figures[1].axes[0]) and not _bands(figures[1].axes[1])
    # the test accuracy's own error instead: +-1 binomial standard error on the test split's 359 images
    accuracy = figures[1].axes[2]
    for band, label in zip(_bands(accuracy), ("SGD", "ABSA")):
        (line,) = _colour_of(accuracy, label)
        spread = np.sqrt(line.get_ydata() * (1 - line.get_ydata()) / 359)
        np.testing.assert_allclose(band.get_paths()[0].vertices[1:5, 1], line.get_ydata() - spread)
    texts = [t.get_text() for t in figures[2].axes[0].get_legend().get_texts()]
    assert texts[0] == "SGD: trace 42 $\\pm$ 1.5 (50 probes)\ndensity's trace 40 (1 probe: no error estimate)"
    assert not any("seeds" in t.get_text() for fig in figures[:2] for t in _legend(fig).get_texts())


def _label_run(model: str, optimizer: str, variant: str, seed: int = 0) -> dict:
    key = f"hessianflow/runs/{model}/digits/bs16/seed{seed}/{variant}"
    return {"model": model, "optimizer": {"name": optimizer}, "variant": variant, "seed": seed, "key": key}


def test_run_labels_name_the_variant_only_where_a_model_has_two_runs_of_one_optimizer():
    from hessian_spectra.studies.hessianflow.table import labels

    runs = [_label_run("c1", "sgd", "a"), _label_run("c1", "absa", "b"), _label_run("resnet20", "sgd", "c"),
            _label_run("resnet20", "sgd", "d")]
    assert labels(runs) == ["SGD", "ABSA", "SGD (c)", "SGD (d)"]


def test_every_seed_of_a_configuration_shares_its_label():
    from hessian_spectra.studies.hessianflow.table import labels

    runs = [_label_run("c1", optimizer, optimizer, seed) for optimizer in ("sgd", "absa") for seed in (0, 1)]
    assert labels(runs) == ["SGD", "SGD", "ABSA", "ABSA"]


@pytest.mark.slow
def test_tiny_workflow_draws_every_figure(tiny_run):
    tmp_path = tiny_run
    config = yaml.safe_load(TINY.read_text())
    config["studies"] = {"hessianflow": config["studies"]["hessianflow"]}
    for name in FIGURES:
        path = tmp_path / "results" / "figures" / "hessianflow" / f"{name}.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    runs = plan_runs(config, SCHEMA)
    assert len(runs) == 2
    for key, run in runs.items():
        rows = _read(tmp_path / layout.dominant_eigen(key))
        assert len(rows) == 2 * (run["epochs"] + 1) and all(r["residual"] != "nan" for r in rows)
        final = _read(tmp_path / layout.final_trace_density(key, "tsv"))
        assert {r["quantity"] for r in final} >= {"trace", "density_mean"}
    absa = next(key for key, run in runs.items() if run["optimizer"]["name"] == "absa")
    history = _read(tmp_path / layout.run_files(absa).history)
    assert [int(r["ratio"]) for r in history[1:]] == [1, 2, 4]  # patience 1: a doubling after every check
    assert float(history[1]["adv_ratio"]) == 0.2 and float(history[2]["adv_ratio"]) == 0.0
