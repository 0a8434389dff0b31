"""Study `layerhessians`: layer-block densities against the dense Hessian, the planned DAG, and a tiny run."""

import copy
import json
import shlex

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import REPO, planned_jobs, snakemake, training_jobs, write_config
from hessian_spectra import job_settings, layout
from hessian_spectra.curvature import dense_hessian, make_batches
from hessian_spectra.curvature.slq import trapezoid
from hessian_spectra.matching import FULL, load_spectra
from hessian_spectra.models import build_model, layer_block_count, layer_blocks
from hessian_spectra.runs import load_yaml, plan_runs, plan_subsets
from hessian_spectra.spectrum import SpectrumRequest, compute_spectrum, write_spectrum
from hessian_spectra.studies import built_in
from hessian_spectra.studies.layerhessians.table import COLUMNS

FIGURES = "results/figures/layerhessians"
SCHEMA = load_yaml(REPO / "workflow" / "schemas" / "config.schema.yaml")


def distinct(values, tol):
    """Sorted values with those closer than ``tol`` to their predecessor dropped."""
    values = np.sort(values)
    return values[np.concatenate([[True], np.diff(values) > tol])]


def test_layer_densities_agree_with_the_dense_blocks(tmp_path):
    torch.manual_seed(0)
    model = build_model("lenet", 1, 16, 3, width=0.1)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(20, 1, 16, 16, generator=gen), torch.randint(0, 3, (20,), generator=gen)
    batches = make_batches(x, y, 16)
    names = [name for name, _ in model.named_parameters()]
    sizes = [p.numel() for p in model.parameters()]
    offsets = dict(zip(names, np.cumsum([0] + sizes[:-1])))
    request = SpectrumRequest(
        density_steps=max(sizes), density_probes=8, grid_points=512, layers=True, dtype="float64", seed=3
    )
    write_spectrum(compute_spectrum(model, batches, request, epoch=0), tmp_path / "t.tsv", tmp_path / "s.npz")
    spectra = load_spectra(tmp_path / "s.npz")
    assert list(spectra) == [FULL, *layer_blocks(model)]
    H = dense_hessian(model, batches).numpy()
    table = pd.read_csv(tmp_path / "t.tsv", sep="\t")
    for block in layer_blocks(model):
        lo = offsets[block]
        n = dict(zip(names, sizes))[block]
        exact = np.linalg.eigvalsh(H[lo : lo + n, lo : lo + n])
        tol = 1e-7 * np.abs(exact).max()
        s = spectra[block]
        # full-length Lanczos: every probe's Ritz nodes are the block's distinct eigenvalues (a low-rank ReLU
        # Hessian: many zeros, found once), its weights the probe's squared components in their eigenspaces
        for nodes, weights in zip(s.nodes, s.weights):
            found = distinct(nodes[weights > 1e-12], tol)
            np.testing.assert_allclose(found, distinct(exact, tol), atol=tol)
            assert weights.sum() == pytest.approx(1.0)
        # SLQ moments estimate tr(H^k) / n within their standard errors; smoothing keeps the mean and adds sigma^2
        for power, quantity in ((1, "density_mean"), (2, "density_second_moment")):
            row = table[(table["block"] == block) & (table["quantity"] == quantity)].iloc[0]
            assert abs(row["value"] - np.mean(exact**power)) <= 4 * row["stderr"] + 1e-12
            quadrature = np.mean(np.sum(s.weights * s.nodes**power, axis=1))
            assert row["value"] == pytest.approx(quadrature, rel=1e-12)
        # (up to the Gaussians' mass beyond the grid's 5-sigma margins: a few 1e-7 of the range)
        width = s.nodes.max() - s.nodes.min()
        sigma = request.sigma_rel * width
        mean = np.mean(np.sum(s.weights * s.nodes, axis=1))
        second = np.mean(np.sum(s.weights * s.nodes**2, axis=1))
        assert trapezoid(s.grid * s.density, s.grid) == pytest.approx(mean, abs=1e-6 * width)
        assert trapezoid(s.grid**2 * s.density, s.grid) == pytest.approx(second + sigma**2, abs=1e-6 * width**2)


def only_layerhessians(config: dict) -> dict:
    config = copy.deepcopy(config)
    for study in built_in():
        if study.name != "layerhessians":
            config["studies"][study.name]["enabled"] = False
    return config


def test_paper_config_plans_every_epoch_of_every_run(tmp_path):
    paper = only_layerhessians(yaml.safe_load((REPO / "configs" / "paper.yaml").read_text()))
    configfile = write_config(tmp_path / "paper.yaml", paper)
    result = snakemake(tmp_path, "-n", configfile=configfile)
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result.stdout)
    layer_counts = {layer_block_count(model) for model in ("lenet", "vgg11_bn", "resnet18")}
    planned = plan_runs(paper, SCHEMA)
    assert len(planned) == 12 and sum(training_jobs(planned.values()).values()) == 12
    assert {rule: n for rule, n in jobs.items() if rule.startswith(("train", "layerhessians", "hessian_subset"))} == {
        **training_jobs(planned.values()),
        "hessian_subset": len(plan_subsets(planned)),
        "layerhessians_spectrum": 12 * 51,
        "layerhessians_table": 1,
        "layerhessians_match_figure": 2,
        **{f"layerhessians_epochwise_figures_{count}_layers": 4 for count in layer_counts},
    }


def test_peak_figure_builds_only_what_it_needs(tmp_path):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    epochs = config["studies"]["layerhessians"]["defaults"]["epochs"]
    runs = len(config["studies"]["layerhessians"]["runs"])
    result = snakemake(tmp_path, "-n", f"{FIGURES}/match_distros_peak.png", configfile=REPO / "config.yaml")
    assert result.returncode == 0, result.stderr
    planned = [run for run in plan_runs(config, SCHEMA).values() if run["study"] == "layerhessians"]
    assert len(planned) == runs
    assert planned_jobs(result.stdout) == {
        **training_jobs(planned),
        "hessian_subset": len(plan_subsets({run["key"]: run for run in planned})),
        "layerhessians_spectrum": runs * (epochs + 1),
        "layerhessians_table": 1,
        "layerhessians_match_figure": 1,
    }


def test_runs_that_differ_only_by_seed_share_every_figure(tmp_path, default_config):
    config = only_layerhessians(default_config)
    config["studies"]["layerhessians"]["seeds"] = 2
    epochs = config["studies"]["layerhessians"]["defaults"]["epochs"]
    result = snakemake(tmp_path, "-n", "-p", configfile=write_config(tmp_path / "seeds.yaml", config))
    assert result.returncode == 0, result.stderr
    planned = [run for run in plan_runs(config, SCHEMA).values() if run["study"] == "layerhessians"]
    names = {(run["model"], run["dataset"]) for run in planned}
    assert len(planned) == 2 * len(names) and {run["seed"] for run in planned} == {0, 1}
    jobs = planned_jobs(result.stdout)
    assert jobs["layerhessians_spectrum"] == len(planned) * (epochs + 1)
    assert sum(n for rule, n in jobs.items() if rule.startswith("layerhessians_epochwise")) == len(names)
    commands = [line for line in result.stdout.splitlines() if "layerhessians epochwise" in line]
    assert len(commands) == len(names)
    for command, (model, dataset) in zip(sorted(commands), sorted(names)):
        flags = job_settings.flags(json.loads(shlex.split(command.split("--settings ", 1)[1])[0]))
        given = [flags[i + 1] for i, flag in enumerate(flags) if flag == "--run"]
        runs = [f"results/layerhessians/runs/{model}/{dataset}/bs{run['batch_size']}/seed{run['seed']}/"
                for run in planned if (run["model"], run["dataset"]) == (model, dataset)]
        assert len(given) == 2 and all(any(path.startswith(run) for path in given) for run in runs)


def lenet_key(default_config, name=None):
    """The run key of the default config's lenet run, or of a copy of it named ``name``."""
    run = {**default_config["studies"]["layerhessians"]["runs"][0], **({"name": name} if name else {})}
    study = {**default_config["studies"]["layerhessians"], "runs": [run]}
    (key,) = plan_runs({"studies": {"layerhessians": study}}, SCHEMA)
    return key


@pytest.mark.parametrize(
    "mutate, message",
    [
        (
            lambda study: study["runs"].append({**study["runs"][0], "name": "again"}),
            lambda config: f"results/{lenet_key(config)} and results/{lenet_key(config, 'again')} have the same "
            "model and dataset",
        ),
        (
            lambda study: study.setdefault("matching", {}).update(peak_epoch={"lenet/mnist": 2}),
            lambda config: "studies.layerhessians.matching.peak_epoch.lenet/mnist: no such run (runs: lenet/mnist5k",
        ),
        (
            lambda study: study.setdefault("matching", {}).update(peak_epoch={"lenet/mnist5k": 99}),
            lambda config: "peak_epoch.lenet/mnist5k: epoch 99 is past the run's last epoch",
        ),
    ],
    ids=["same-model-and-dataset", "unknown-peak-run", "peak-past-last-epoch"],
)
def test_bad_layerhessians_config_stops_at_parse_time(tmp_path, default_config, mutate, message):
    config = only_layerhessians(default_config)
    mutate(config["studies"]["layerhessians"])
    result = snakemake(tmp_path, "-n", configfile=write_config(tmp_path / "bad.yaml", config))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "invalid config" in output and message(default_config) in output
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_tiny_workflow_draws_every_figure(tiny_run):
    tmp_path = tiny_run
    config = only_layerhessians(yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text()))
    study = config["studies"]["layerhessians"]
    epochs = study["defaults"]["epochs"]
    runs = [{**study["defaults"], **run} for run in study["runs"]]
    figures = [f"{FIGURES}/match_distros_{kind}.png" for kind in ("wasserstein", "peak")]
    for run in runs:
        figures += [
            f"{FIGURES}/training_eigvals_epochwise_{run['model']}_{run['dataset']}_{layer}.png"
            for layer in range(1, layer_block_count(run["model"], run.get("model_options")) + 1)
        ]
    for figure in figures:
        assert (tmp_path / figure).stat().st_size > 10_000, figure
    blocks = {run["model"]: layer_block_count(run["model"], run.get("model_options")) for run in runs}
    table = pd.read_csv(tmp_path / layout.study_table("layerhessians", "matching.tsv"), sep="\t")
    assert tuple(table.columns) == COLUMNS
    assert len(table) == sum((epochs + 1) * blocks[run["model"]] * 2 for run in runs)
    for label, epoch in study["matching"]["peak_epoch"].items():
        model, dataset = label.split("/")
        rows = table[(table["model"] == model) & (table["dataset"] == dataset)]
        assert set(rows["peak_epoch"]) == {epoch} and set(rows["peak_rule"]) == {"config"}
    spectra = sorted((tmp_path / "results" / "tables" / "layerhessians").rglob("layer_spectra/epoch_*.tsv"))
    assert len(spectra) == len(runs) * (epochs + 1)
    eigenvalues = pd.concat(pd.read_csv(path, sep="\t") for path in spectra)
    top = eigenvalues[eigenvalues["quantity"] == "eigenvalue"]
    spectra_blocks = sum((epochs + 1) * (1 + blocks[run["model"]]) for run in runs)
    assert len(top) == spectra_blocks * study["spectrum"]["top_k"]
    assert top["residual"].notna().all() and top["converged"].all()
