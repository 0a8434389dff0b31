"""Layer-vs-full spectral distances: both metrics, the peak epoch, the `layerhessians table` command and the figures."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import wasserstein_distance

from hessian_spectra import cli
from hessian_spectra.matching import (
    FULL,
    SOURCE,
    SPECTRAL_W1,
    Spectrum,
    jackknife_stderr,
    layer_blocks_of,
    layer_distances,
    layer_profile,
    load_spectra,
    scaled_spectral_w1,
    source_distance,
    source_transform,
    spectral_scale,
    spectral_w1,
    without_probe,
)
from hessian_spectra.smoothing import gaussian_density, grid_sigma, smooth_density
from hessian_spectra.studies.layerhessians.table import COLUMNS, PEAK_CONFIG, PEAK_MIN_SUM, RunSpectra, build_table


def source_density_transform(density):
    """The source's density_transform (LayerHessians match_distros.py), written out independently."""
    p_min = min(d for d in density.tolist() if d > 0.0)
    eps = np.array([p_min if pi == 0.0 else 0.0 for pi in density])
    p = np.log(density + eps)
    p = (p - p.min()) / (p.max() - p.min())
    return p / np.sum(p)


def spectrum(nodes, weights=None, grid_points=64, sigma=0.05):
    """A spectrum from nodes (probes, steps) with a Gaussian-smoothed density, as the engine stores it."""
    nodes = np.atleast_2d(np.asarray(nodes, dtype=float))
    weights = np.full_like(nodes, 1.0 / nodes.shape[1]) if weights is None else np.atleast_2d(weights)
    grid = np.linspace(nodes.min() - 5 * sigma, nodes.max() + 5 * sigma, grid_points)
    density = sum(np.exp(-0.5 * ((grid[:, None] - n[None, :]) / sigma) ** 2) @ w for n, w in zip(nodes, weights))
    return Spectrum(nodes, weights, grid, density / np.trapezoid(density, grid), sigma)


def test_source_transform_matches_the_source_code():
    rng = np.random.default_rng(0)
    density = rng.exponential(size=1024)
    density[[3, 500, 1000]] = 0.0
    ours = source_transform(density)
    np.testing.assert_allclose(ours, source_density_transform(density), rtol=1e-12)
    assert ours.sum() == pytest.approx(1.0) and ours.min() == 0.0
    other = rng.exponential(size=1024)
    expected = wasserstein_distance(source_density_transform(density), source_density_transform(other))
    assert source_distance(density, other) == pytest.approx(expected, rel=1e-12)


def test_source_transform_with_a_fixed_eps():
    density = np.array([0.0, 1.0, np.e - 1e-3])
    low = np.log(1e-3)  # log(0 + eps); the others are log(1.001) and log(e) = 1
    scaled = np.array([0.0, np.log(1.001) - low, 1.0 - low]) / (1.0 - low)
    np.testing.assert_allclose(source_transform(density, eps=1e-3), scaled / scaled.sum(), rtol=1e-12)


def test_source_transform_refuses_a_flat_density():
    with pytest.raises(ValueError, match="constant"):
        source_transform(np.ones(8))
    with pytest.raises(ValueError, match="no positive"):
        source_transform(np.zeros(8))


def test_identical_spectra_are_at_distance_zero_by_both_metrics():
    a = spectrum([[0.0, 0.1, 0.2, 3.0], [0.05, 0.1, 1.0, 2.9]], [[0.4, 0.3, 0.2, 0.1], [0.5, 0.2, 0.2, 0.1]])
    assert source_distance(a.density, a.density) == 0.0
    assert scaled_spectral_w1(a, a) == 0.0
    assert spectral_w1(a.nodes, a.weights, a.nodes, a.weights) == 0.0


def test_spectral_w1_of_a_shifted_spectrum_is_the_shift():
    nodes = np.array([[-0.5, 0.0, 0.3, 2.0], [0.1, 0.2, 1.5, 4.0]])
    weights = np.array([[0.1, 0.5, 0.3, 0.1], [0.25, 0.25, 0.25, 0.25]])
    for shift in (0.7, -2.5):
        assert spectral_w1(nodes + shift, weights, nodes, weights) == pytest.approx(abs(shift), rel=1e-12)


def test_spectral_w1_averages_probes_and_ignores_padding():
    # probe 1: delta(0); probe 2: delta(1) padded with a zero-weight copy -> measure 0.5 delta(0) + 0.5 delta(1)
    nodes = np.array([[0.0, 0.0], [1.0, 1.0]])
    weights = np.array([[1.0, 0.0], [1.0, 0.0]])
    assert spectral_w1(nodes, weights, np.array([[0.0]]), np.array([[1.0]])) == pytest.approx(0.5)


def test_scaled_w1_divides_by_the_spectral_radius():
    base = spectrum([[-0.2, 0.0, 0.5, 1.0]])
    assert spectral_scale(base.nodes, base.weights) == 1.0
    stretched = spectrum(base.nodes * 40.0)
    assert scaled_spectral_w1(stretched, base) == pytest.approx(0.0, abs=1e-15)
    narrow = spectrum([[-0.2, 0.0, 0.5, 2.0]])  # same atoms but the top one: scaled by 2 instead of 1
    expected = spectral_w1(narrow.nodes / 2.0, narrow.weights, base.nodes, base.weights)
    assert scaled_spectral_w1(narrow, base) == pytest.approx(expected) and expected > 0


@pytest.mark.parametrize("nodes", [[[-0.3, 0.0, 1.5, 2.0], [0.1, 0.2, 0.9, 2.2]], [[0.7, 0.7], [0.7, 0.7]]])
def test_the_smoothing_width_is_recovered_from_the_grid(nodes):
    """A stored density is rebuilt exactly from its nodes, weights and grid (a zero-width spectrum included)."""
    nodes = np.array(nodes)
    weights = np.full_like(nodes, 1.0 / nodes.shape[1])
    grid, density, sigma = smooth_density(nodes, weights, 257, 0.02)
    assert grid_sigma(grid, nodes, weights) == pytest.approx(sigma, rel=1e-12)
    np.testing.assert_allclose(gaussian_density(nodes, weights, grid, sigma), density, rtol=1e-12)


def test_without_probe_is_the_density_of_the_other_probes():
    a = spectrum([[0.0, 0.5, 2.0], [0.1, 0.4, 1.0], [0.2, 0.9, 1.9]])
    rest = without_probe(a, 1)
    np.testing.assert_array_equal(rest.nodes, a.nodes[[0, 2]])
    alone = spectrum(a.nodes[[0, 2]])  # same node range as a, so the same grid
    np.testing.assert_allclose(rest.density, alone.density, rtol=1e-12)


def test_jackknife_stderr_over_each_spectrums_probes():
    a = spectrum([[0.0, 0.5, 2.0], [0.1, 0.4, 1.0], [0.2, 0.9, 1.9]])
    b = spectrum([[0.0, 0.3, 2.0], [0.0, 0.6, 2.1]])
    variance = 0.0
    for spectra in ([(a.nodes[keep], b.nodes) for keep in ([1, 2], [0, 2], [0, 1])],
                    [(a.nodes, b.nodes[keep]) for keep in ([1], [0])]):
        values = np.array([scaled_spectral_w1(spectrum(x), spectrum(y)) for x, y in spectra])
        variance += (len(values) - 1) / len(values) * np.sum((values - values.mean()) ** 2)
    assert jackknife_stderr(scaled_spectral_w1, a, b) == pytest.approx(np.sqrt(variance), rel=1e-12)
    assert variance > 0
    assert np.isnan(jackknife_stderr(scaled_spectral_w1, a, spectrum(b.nodes[:1])))  # one probe: no error


def test_layer_distances_carry_their_probe_errors():
    full = spectrum([[0.0, 0.3, 2.0], [0.0, 0.6, 2.1]])
    rows = layer_distances({FULL: full, "layer.weight": spectrum([[0.0, 0.5, 1.0], [0.1, 0.4, 1.1]])})
    assert [row["metric"] for row in rows] == [SOURCE, SPECTRAL_W1]
    assert all(row["probes"] == 2 and row["distance_stderr"] > 0 for row in rows)
    single = layer_distances({FULL: spectrum(full.nodes[:1]), "layer.weight": spectrum([[0.0, 0.5, 1.0]])})
    assert all(np.isnan(row["distance_stderr"]) for row in single)


def write_spectra(path, blocks):
    """An npz in the `spectrum` command's layout: blocks, nodes_i, weights_i, grid_i, density_i, sigma_i."""
    arrays = {"blocks": np.array(list(blocks))}
    for i, s in enumerate(blocks.values()):
        arrays.update({f"nodes_{i}": s.nodes, f"weights_{i}": s.weights, f"grid_{i}": s.grid, f"density_{i}": s.density,
                       f"sigma_{i}": s.sigma})
    np.savez(path, **arrays)
    return path


FULL_SPECTRUM = spectrum([[0.0, 0.01, 0.02, 0.5, 2.0]])


def epoch_blocks(closeness):
    """Full plus three layers; layer i's top eigenvalue departs from the full one's shape by (i + 1) * closeness."""
    layers = {
        f"layer{i}.weight": spectrum([[0.0, 0.01, 0.02, 0.5 + (i + 1) * closeness, 2.0]]) for i in range(3)
    }
    return {FULL: FULL_SPECTRUM, **layers}


@pytest.fixture
def run_files(tmp_path):
    """Two runs; run a matches its full spectrum at epoch 0 (excluded by first_epoch=1), then best at epoch 2."""
    runs = []
    for name, closeness in (("a", [0.0, 0.4, 0.05, 0.3]), ("b", [0.3, 0.2, 0.45, 0.1])):
        directory = tmp_path / name
        directory.mkdir()
        files = {e: write_spectra(directory / f"epoch_{e:04d}.npz", epoch_blocks(c)) for e, c in enumerate(closeness)}
        meta = {"key": f"layerhessians/runs/lenet/{name}", "seed": 0, "model": "lenet", "dataset": f"data{name}"}
        (directory / "run.json").write_text(json.dumps(meta))
        runs.append((directory / "run.json", RunSpectra(meta["key"], 0, meta["model"], meta["dataset"], files)))
    return runs


def test_load_spectra_reads_blocks_in_order(run_files):
    _, run = run_files[0]
    spectra = load_spectra(run.files[1])
    assert list(spectra) == [FULL, "layer0.weight", "layer1.weight", "layer2.weight"]
    np.testing.assert_array_equal(spectra[FULL].density, FULL_SPECTRUM.density)


def test_the_study_table_rows_and_peak_epochs(run_files):
    table = build_table([run for _, run in run_files])
    assert tuple(table.columns) == COLUMNS
    assert len(table) == 2 * 4 * 3 * 2  # runs x epochs x layers x metrics
    assert set(table["peak_rule"]) == {PEAK_MIN_SUM}
    a = table[table["run"].str.endswith("/a")]
    assert not a[a["epoch"] == 0]["summed"].any() and a[a["epoch"] > 0]["summed"].all()
    assert (a[a["epoch"] == 0]["distance"] == 0).all()
    # spectral W1: layer i moves one atom of weight 0.2 by (i + 1) * closeness on a spectrum of radius 2
    w1 = table[table["metric"] == SPECTRAL_W1]
    expected = 0.1 * w1["layer"]
    closeness = {("a", 1): 0.4, ("a", 2): 0.05, ("b", 3): 0.1}
    for (name, epoch), c in closeness.items():
        rows = w1[w1["run"].str.endswith(f"/{name}") & (w1["epoch"] == epoch)]
        np.testing.assert_allclose(rows["distance"], c * expected[rows.index], rtol=1e-9)
    assert set(w1[w1["run"].str.endswith("/a")]["peak_epoch"]) == {2}
    assert set(w1[w1["run"].str.endswith("/b")]["peak_epoch"]) == {3}
    # the source metric's peak: the summed epoch of smallest distance summed over layers
    for key, rows in table[table["metric"] == SOURCE].groupby("run"):
        sums = rows[rows["summed"]].groupby("epoch")["distance"].sum()
        assert set(rows["peak_epoch"]) == {sums.idxmin()}
    with_zero = build_table([run for _, run in run_files], first_epoch=0)
    assert set(with_zero[with_zero["run"].str.endswith("/a")]["peak_epoch"]) == {0}


def test_peak_epoch_override(run_files):
    table = build_table([run for _, run in run_files], peak_overrides={"lenet/dataa": 3})
    a = table[table["run"].str.endswith("/a")]
    assert set(a["peak_epoch"]) == {3} and set(a["peak_rule"]) == {PEAK_CONFIG}
    assert set(table[table["run"].str.endswith("/b")]["peak_rule"]) == {PEAK_MIN_SUM}
    with pytest.raises(ValueError, match="lenet/datac: no such run"):
        build_table([run for _, run in run_files], peak_overrides={"lenet/datac": 1})
    with pytest.raises(ValueError, match="no spectrum of that epoch"):
        build_table([run for _, run in run_files], peak_overrides={"lenet/dataa": 9})
    with pytest.raises(ValueError, match="/b: no spectrum from epoch 4 on"):
        build_table([run for _, run in run_files], first_epoch=4, peak_overrides={"lenet/dataa": 3})


def test_layer_profile_normalises_per_run_and_metric(run_files):
    table = build_table([run for _, run in run_files])
    for kind in ("wasserstein", "peak"):
        profile = layer_profile(table, kind)
        assert len(profile) == 2 * 2 * 3
        assert (profile.groupby(["run", "metric"])["relative"].max() == 1.0).all()
        assert sorted(set(profile["depth"])) == [0.0, 0.5, 1.0]
    summed = layer_profile(table, "wasserstein")
    a = table[table["run"].str.endswith("/a") & table["summed"] & (table["layer"] == 3) & (table["metric"] == SOURCE)]
    row = summed[summed["run"].str.endswith("/a") & (summed["layer"] == 3) & (summed["metric"] == SOURCE)]
    assert row["distance"].item() == pytest.approx(a["distance"].sum())
    assert np.isnan(row["distance_stderr"].item())  # one probe per density: no error


def test_layer_profile_adds_the_epochs_errors_in_quadrature():
    table = pd.DataFrame({
        "run": "r", "seed": 0, "model": "lenet", "dataset": "digits", "metric": SOURCE, "layer": [1, 1, 2, 2],
        "num_layers": 2, "block": ["l1", "l1", "l2", "l2"], "peak_epoch": 2, "peak_rule": "smallest summed distance", "probes": 4, "epoch": [1, 2, 1, 2],
        "summed": True, "distance": [1.0, 2.0, 4.0, 4.0], "distance_stderr": [0.3, 0.4, 0.1, 0.1],
    })
    summed = layer_profile(table, "wasserstein").set_index("layer")
    assert summed.loc[1, "distance_stderr"] == pytest.approx(0.5)
    assert summed.loc[1, "relative_stderr"] == pytest.approx(0.5 / 8)
    peak = layer_profile(table, "peak").set_index("layer")
    assert peak.loc[1, "distance_stderr"] == pytest.approx(0.4) and peak.loc[2, "relative"] == 1.0


def test_table_command_and_figures(run_files, tmp_path):
    args = ["layerhessians", "table"]
    for run_json, run in run_files:
        args += ["--run", str(run_json), *(str(run.files[e]) for e in sorted(run.files))]
    out, profiles = tmp_path / "matching.tsv", tmp_path / "match_profiles.tsv"
    assert cli.main([*args, "--out", str(out), "--profiles", str(profiles), "--peak-epoch", "lenet/datab=1"]) == 0
    table = pd.read_csv(out, sep="\t")
    assert tuple(table.columns) == COLUMNS and set(table["metric"]) == {SOURCE, SPECTRAL_W1}
    assert set(table[table["dataset"] == "datab"]["peak_epoch"]) == {1}
    assert table["summed"].dtype == bool
    spectra = {(run.key, epoch): load_spectra(path) for _, run in run_files for epoch, path in run.files.items()}
    for row in table.itertuples():  # the fewer of the two densities' probes
        both = spectra[row.run, row.epoch]
        assert row.probes == min(len(both[row.block].nodes), len(both[FULL].nodes))
    written = pd.read_csv(profiles, sep="\t")
    for kind in ("wasserstein", "peak"):
        expected = layer_profile(table, kind)
        mine = written[written["kind"] == kind].drop(columns="kind").reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, expected, check_dtype=False)
        png = tmp_path / f"match_distros_{kind}.png"
        args = ["layerhessians", "match-distros", "--profiles", str(profiles), "--kind", kind, "--out", str(png)]
        rc = cli.main(args)
        assert rc == 0 and png.stat().st_size > 10_000
    run_json, run = run_files[0]
    spectra = [str(run.files[e]) for e in sorted(run.files)]
    blocks = layer_blocks_of(load_spectra(spectra[0]))
    pngs = [str(tmp_path / f"epochwise_{layer}.png") for layer in range(1, len(blocks) + 1)]
    rc = cli.main(["layerhessians", "epochwise", "--run", str(run_json), *spectra, "--out", *pngs])
    assert rc == 0 and all(Path(png).stat().st_size > 10_000 for png in pngs)
    extra = [str(tmp_path / f"no_{layer}.png") for layer in range(len(blocks) + 1)]
    rc = cli.main(["layerhessians", "epochwise", "--run", str(run_json), *spectra, "--out", *extra])
    assert rc == 2 and not any(Path(png).exists() for png in extra)


def test_table_command_refuses_misnamed_files(run_files, tmp_path):
    run_json, run = run_files[0]
    odd = tmp_path / "spectrum.npz"
    odd.write_bytes(run.files[0].read_bytes())
    rc = cli.main(["layerhessians", "table", "--run", str(run_json), str(odd), "--out", str(tmp_path / "t.tsv"),
                   "--profiles", str(tmp_path / "p.tsv")])
    assert rc == 2 and not (tmp_path / "t.tsv").exists() and not (tmp_path / "p.tsv").exists()


@pytest.fixture
def seed_files(tmp_path):
    """One model and dataset with two seeds: seed 0 closest to its full spectrum at epoch 2, seed 1 at epoch 3."""
    runs = []
    for seed, closeness in ((0, [0.3, 0.4, 0.05, 0.3]), (1, [0.3, 0.2, 0.45, 0.1])):
        directory = tmp_path / f"seed{seed}"
        directory.mkdir()
        files = {e: write_spectra(directory / f"epoch_{e:04d}.npz", epoch_blocks(c)) for e, c in enumerate(closeness)}
        meta = {"key": f"layerhessians/runs/lenet/digits/bs64/seed{seed}/sgd", "seed": seed, "model": "lenet",
                "dataset": "digits"}
        (directory / "run.json").write_text(json.dumps(meta))
        runs.append((directory / "run.json", RunSpectra(meta["key"], seed, meta["model"], meta["dataset"], files)))
    return runs


def test_the_study_table_keeps_every_seed_with_its_own_peak_epoch(seed_files):
    table = build_table([run for _, run in seed_files])
    assert list(table.columns[:2]) == ["run", "seed"] and set(table["seed"]) == {0, 1}
    assert len(table) == 2 * 4 * 3 * 2
    w1 = table[table["metric"] == SPECTRAL_W1]
    assert set(w1[w1["seed"] == 0]["peak_epoch"]) == {2} and set(w1[w1["seed"] == 1]["peak_epoch"]) == {3}
    for kind in ("wasserstein", "peak"):
        profile = layer_profile(table, kind)
        assert set(profile["seed"]) == {0, 1}
        assert (profile.groupby(["seed", "metric"])["relative"].max() == 1.0).all()
    fixed = build_table([run for _, run in seed_files], peak_overrides={"lenet/digits": 1})
    assert set(fixed["peak_epoch"]) == {1} and set(fixed["peak_rule"]) == {PEAK_CONFIG}


def _band_span(ax) -> tuple[float, float]:
    (band,) = ax.collections
    y = band.get_paths()[0].vertices[:, 1]
    return y.min(), y.max()


def test_match_figure_draws_the_mean_over_seeds_with_their_range(seed_files):
    from matplotlib.collections import PolyCollection

    from hessian_spectra.matching import layer_profiles
    from hessian_spectra.plots.layerhessians import match_distros_figure

    profiles = layer_profiles(build_table([run for _, run in seed_files]))
    for kind in ("wasserstein", "peak"):
        fig = match_distros_figure(profiles, kind)
        for ax, metric in zip(fig.axes, (SOURCE, SPECTRAL_W1)):
            rows = profiles[(profiles["kind"] == kind) & (profiles["metric"] == metric)]
            by_depth = rows.groupby("depth")["relative"]
            (line,) = ax.get_lines()
            np.testing.assert_allclose(line.get_xdata(), by_depth.mean().index)
            np.testing.assert_allclose(line.get_ydata(), by_depth.mean().to_numpy())
            assert isinstance(ax.collections[0], PolyCollection)
            assert _band_span(ax) == pytest.approx((by_depth.min().min(), by_depth.max().max()))
            legend = [text.get_text() for text in ax.get_legend().get_texts()]
            assert "range over 2 seeds (line: mean)" in legend
        peaks = [text.get_text() for text in fig.axes[1].get_legend().get_texts()] if kind == "peak" else []
        assert not peaks or peaks[0] == "lenet+digits (epochs 2 (seed 0), 3 (seed 1))"
    one = match_distros_figure(profiles[profiles["seed"] == 0], "peak")
    assert all(not ax.collections for ax in one.axes)
    assert [text.get_text() for text in one.axes[1].get_legend().get_texts()] == ["lenet+digits (epoch 2)"]


def _densities(ax) -> list:
    """The density curves of an epochwise panel (its labelled lines, or its solid lines without markers)."""
    return [line for line in ax.get_lines() if line.get_linestyle() == "-" and line.get_marker() in ("None", "")]


def test_epochwise_draws_every_seed_in_every_panel(seed_files, tmp_path):
    from hessian_spectra.plots.layerhessians import epochwise_figure

    spectra = {run.seed: {e: load_spectra(path) for e, path in run.files.items()} for _, run in seed_files}
    fig = epochwise_figure(spectra, "layer1.weight", "title")
    assert len(fig.axes) == 4 * 2
    for ax in fig.axes:
        assert [line.get_label() for line in _densities(ax)] == ["seed 0", "seed 1"]
    assert [text.get_text() for text in fig.legends[0].get_texts()][:2] == ["seed 0", "seed 1"]
    one = epochwise_figure({0: spectra[0]}, "layer1.weight", "title")
    assert all(len(_densities(ax)) == 1 for ax in one.axes)
    assert not any(text.get_text().startswith("seed") for text in one.legends[0].get_texts())
    args = ["layerhessians", "epochwise"]
    for run_json, run in seed_files:
        args += ["--run", str(run_json), *(str(run.files[e]) for e in sorted(run.files))]
    pngs = [str(tmp_path / f"epochwise_{layer}.png") for layer in range(1, 4)]
    assert cli.main([*args, "--out", *pngs]) == 0 and all(Path(png).stat().st_size > 10_000 for png in pngs)


def test_epochwise_refuses_runs_that_differ_in_more_than_the_seed(run_files, tmp_path):
    args = ["layerhessians", "epochwise"]
    for run_json, run in run_files:
        args += ["--run", str(run_json), *(str(run.files[e]) for e in sorted(run.files))]
    pngs = [str(tmp_path / f"epochwise_{layer}.png") for layer in range(1, 4)]
    assert cli.main([*args, "--out", *pngs]) == 2 and not any(Path(png).exists() for png in pngs)


def test_epochwise_panels_are_in_units_of_the_spectral_radius_with_lambda_1_and_the_smoothing(seed_files):
    """x = eigenvalue / the spectrum's largest |Ritz value| (so every panel spans [-1, 1]), the density rescaled to
    integrate to 1 on that axis, the Ritz values as a rug, lambda_1 as a dashed line at its scaled value, and the
    smoothing's +-sigma as a bar of width 2 sigma / radius."""
    from hessian_spectra.plots.layerhessians import epochwise_figure

    _, run = seed_files[0]
    spectra = {run.seed: {e: load_spectra(path) for e, path in run.files.items()}}
    fig = epochwise_figure(spectra, "layer1.weight", "title")
    ax = fig.axes[0]  # layer1.weight at epoch 0
    spectrum = spectra[run.seed][0]["layer1.weight"]
    radius = spectral_scale(spectrum.nodes, spectrum.weights)
    assert radius == spectrum.nodes.max() == pytest.approx(2.0)
    (density,) = _densities(ax)
    np.testing.assert_allclose(density.get_xdata(), spectrum.grid / radius)
    assert np.trapezoid(density.get_ydata(), density.get_xdata()) == pytest.approx(1.0, rel=1e-3)
    (rug,) = [line for line in ax.get_lines() if line.get_marker() == "|" and len(line.get_xdata()) > 1]
    np.testing.assert_allclose(np.sort(rug.get_xdata()), np.sort(spectrum.nodes.ravel()) / radius)
    (top,) = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert top.get_xdata()[0] == pytest.approx(1.0)
    (bar,) = [c for c in ax.collections if c.get_segments()]
    (segment,) = bar.get_segments()
    assert segment[1, 0] - segment[0, 0] == pytest.approx(2 * 0.05 / radius)  # the fixture's sigma = 0.05
    assert ax.get_xlim() == (-1.1, 1.1) and "radius 2" in ax.get_title() and "$\\lambda_1$ 2" in ax.get_title()


def test_spectra_without_a_recorded_sigma_load_with_nan(tmp_path):
    """Spectrum files written before the smoothing width was stored still load (and draw no smoothing bar)."""
    s = FULL_SPECTRUM
    np.savez(tmp_path / "old.npz", blocks=np.array([FULL]), nodes_0=s.nodes, weights_0=s.weights, grid_0=s.grid,
             density_0=s.density)
    assert np.isnan(load_spectra(tmp_path / "old.npz")[FULL].sigma)
    path = write_spectra(tmp_path / "new.npz", {FULL: s})
    assert load_spectra(path)[FULL].sigma == 0.05


def test_peak_figure_says_which_epoch_was_chosen_and_why(seed_files):
    """The peak epoch is stated under each panel with its rule; a peak at the last epoch trained is called no peak."""
    from hessian_spectra.matching import layer_profiles
    from hessian_spectra.plots.layerhessians import match_distros_figure

    profiles = layer_profiles(build_table([run for _, run in seed_files]))
    assert set(profiles[["searched_from", "searched_to"]].itertuples(index=False, name=None)) == {(1, 3)}
    fig = match_distros_figure(profiles, "peak")
    w1_note = " ".join(fig.axes[3].texts[0].get_text().split())  # under the spectral-W1 panel, unwrapped
    assert "lenet+digits, seed 0: epoch 2, the smallest distance summed over layers of epochs 1-3" in w1_note
    assert ("lenet+digits, seed 1: epoch 3, the smallest distance summed over layers of epochs 1-3: the last epoch "
            "trained, so no peak inside training") in w1_note
    fixed = layer_profiles(build_table([run for _, run in seed_files], peak_overrides={"lenet/digits": 1}))
    note = match_distros_figure(fixed, "peak").axes[2].texts[0].get_text()
    assert note == "lenet+digits: epoch 1: fixed in the config (matching.peak_epoch)"
    assert not match_distros_figure(profiles, "wasserstein").axes[0].texts
    first = profiles.assign(peak_epoch=1)
    assert "epoch 1, the smallest distance summed over layers of epochs 1-3: the first epoch searched, so no peak" \
        in " ".join(match_distros_figure(first, "peak").axes[2].texts[0].get_text().split())


def test_match_figure_draws_a_distance_error_where_the_profiles_carry_one(seed_files):
    from matplotlib.collections import LineCollection

    from hessian_spectra.matching import layer_profiles
    from hessian_spectra.plots.layerhessians import match_distros_figure

    profiles = layer_profiles(build_table([run for _, run in seed_files]))
    one = profiles[profiles["seed"] == 0].assign(distance_stderr=lambda rows: 0.1 * rows["distance"])
    ax = match_distros_figure(one, "wasserstein").axes[0]
    (bars,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    rows = one[(one["kind"] == "wasserstein") & (one["metric"] == SOURCE)].sort_values("depth")
    spans = [segment[1, 1] - segment[0, 1] for segment in bars.get_segments()]
    np.testing.assert_allclose(spans, 2 * 0.1 * rows["relative"])
    assert not [c for c in match_distros_figure(profiles[profiles["seed"] == 0], "wasserstein").axes[0].collections
                if isinstance(c, LineCollection)]
