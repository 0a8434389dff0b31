"""``hessian-spectra spectrum`` end to end on a tiny checkpoint, checked against the dense float64 Hessian."""

import csv
import math

import numpy as np
import pytest
import torch

from conftest import saved_model
from hessian_spectra import cli
from hessian_spectra.checkpoint import model_spec, save_atomic
from hessian_spectra.curvature import dense_hessian, make_batches
from hessian_spectra.data import load_subset, save_subset
from hessian_spectra.models import layer_blocks
from hessian_spectra.spectrum import COLUMNS, SpectrumRequest, compute_spectrum

SPEC = model_spec("mlp", 1, 4, 3, {"hidden": [5], "activation": "tanh"})


@pytest.fixture
def files(tmp_path):
    torch.manual_seed(0)
    model = saved_model(SPEC, tmp_path / "ckpt.pt", epoch=7)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(37, 1, 4, 4, generator=gen), torch.randint(0, 3, (37,), generator=gen)
    save_subset(tmp_path / "subset.pt", x, y, torch.arange(37), {"split": "test"})
    dense = dense_hessian(model, make_batches(x, y, 16))
    return tmp_path, model, dense


def read_table(path):
    with open(path) as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert rows and tuple(rows[0]) == COLUMNS
    return rows


def run_cli(tmp_path, *extra):
    return cli.main(
        [
            "spectrum",
            "--checkpoint",
            str(tmp_path / "ckpt.pt"),
            "--data",
            str(tmp_path / "subset.pt"),
            "--out",
            str(tmp_path / "table.tsv"),
            "--npz",
            str(tmp_path / "out.npz"),
            "--batch-size",
            "16",
            *extra,
        ]
    )


def test_spectrum_end_to_end(files):
    tmp_path, model, H = files
    exact = torch.linalg.eigvalsh(H).flip(0).numpy()
    rc = run_cli(
        tmp_path,
        "--top-k",
        "3",
        "--tol",
        "1e-10",
        "--dtype",
        "float64",
        "--eigenvectors",
        "--smallest-k",
        "1",
        "--power-iters",
        "10",
        "--trace-probes",
        "12",
        "--trace-method",
        "hutchpp",
        "--frobenius-probes",
        "8",
        "--density-steps",
        "12",
        "--density-probes",
        "2",
        "--grid-points",
        "64",
        "--layers",
    )
    assert rc == 0
    rows = read_table(tmp_path / "table.tsv")
    top = [r for r in rows if r["block"] == "full" and r["quantity"] == "eigenvalue"]
    assert [int(r["index"]) for r in top] == [1, 2, 3]
    assert all(r["epoch"] == "7" and r["converged"] == "true" for r in top)
    assert abs(float(top[0]["value"]) - exact[0]) <= 1e-8 * abs(exact[0])
    smallest = [r for r in rows if r["quantity"] == "eigenvalue_smallest" and r["block"] == "full"]
    assert abs(float(smallest[0]["value"]) - exact[-1]) <= 1e-8 * abs(exact[-1])
    quantities = {(r["block"], r["quantity"]) for r in rows}
    blocks = layer_blocks(model)
    for quantity in ("power_eigenvalue", "trace", "frobenius", "density_mean", "density_second_moment"):
        assert ("full", quantity) in quantities
    for block in blocks:
        assert (block, "eigenvalue") in quantities and (block, "density_mean") in quantities
    trace = next(r for r in rows if r["quantity"] == "trace")
    assert int(trace["products"]) == 12 and math.isnan(float(trace["residual"])) and float(trace["stderr"]) >= 0

    npz = np.load(tmp_path / "out.npz")
    assert list(npz["blocks"]) == ["full", *blocks]
    for i in range(len(blocks) + 1):
        assert npz[f"nodes_{i}"].shape == npz[f"weights_{i}"].shape == (2, 12)
        assert npz[f"grid_{i}"].shape == npz[f"density_{i}"].shape == (64,)
    assert npz["eigenvalues"].shape == npz["residuals"].shape == (3,)
    assert npz["eigenvectors"].shape == (H.shape[0], 3)
    assert list(npz["param_names"]) == [name for name, _ in model.named_parameters()]


def test_spectrum_dense_last_layer(files):
    tmp_path, model, H = files
    last = layer_blocks(model)[-1]
    names = [name for name, _ in model.named_parameters()]
    offset = sum(p.numel() for name, p in model.named_parameters() if names.index(name) < names.index(last))
    size = dict(model.named_parameters())[last].numel()
    block = H[offset : offset + size, offset : offset + size]
    assert (
        run_cli(tmp_path, "--dense", "--params", "last_layer", "--dtype", "float64", "--eigenvectors", "--top-k", "2")
        == 0
    )
    rows = [r for r in read_table(tmp_path / "table.tsv") if r["quantity"] == "eigenvalue"]
    assert {r["block"] for r in rows} == {last} and len(rows) == size
    values = np.array([float(r["value"]) for r in rows])
    assert np.allclose(values, torch.linalg.eigvalsh(block).flip(0).numpy(), rtol=0, atol=1e-12)
    npz = np.load(tmp_path / "out.npz")
    assert npz["eigenvalues"].shape == (size,) and npz["eigenvectors"].shape == (size, 2)


def test_failing_run_leaves_no_output(files):
    tmp_path, _, _ = files
    assert run_cli(tmp_path, "--top-k", "2", "--params", "no_such.weight") == 2
    assert not (tmp_path / "table.tsv").exists() and not (tmp_path / "out.npz").exists()
    assert not list(tmp_path.glob(".table.tsv.*")) and not list(tmp_path.glob(".out.npz.*"))


def test_data_that_is_not_a_subset_file_is_refused_in_one_line(files, caplog):
    tmp_path, _, _ = files
    x, y, _meta = load_subset(tmp_path / "subset.pt")
    save_atomic({"x": x, "y": y}, tmp_path / "subset.pt")  # tensors, but not a subset file (no indices, no meta)
    with caplog.at_level("ERROR"):
        assert run_cli(tmp_path, "--top-k", "2") == 2
    (error,) = [record.getMessage() for record in caplog.records if record.levelname == "ERROR"]
    assert "\n" not in error and str(tmp_path / "subset.pt") in error and "not a Hessian subset" in error
    assert not (tmp_path / "table.tsv").exists() and not (tmp_path / "out.npz").exists()


def test_compute_spectrum_float32_matches_dense(files):
    tmp_path, model, H = files
    x, y, _meta = load_subset(tmp_path / "subset.pt")
    result = compute_spectrum(model, make_batches(x, y, 16), SpectrumRequest(top_k=2), epoch=1)
    exact = torch.linalg.eigvalsh(H).flip(0).numpy()
    values = [row["value"] for row in result.rows if row["quantity"] == "eigenvalue"]
    assert np.allclose(values, exact[:2], rtol=1e-4, atol=0)


def _rows_by_quantity(result) -> dict:
    return {r["quantity"]: r for r in result.rows if r["block"] == "full"}


def test_density_and_hutchinson_traces_agree_with_the_dense_trace_within_their_errors(files):
    """The trace a density implies (n times its mean) and Hutchinson's, each with its probes and standard error,
    both within 4 standard errors of the dense float64 trace and of each other."""
    _, model, H = files
    x, y, _ = load_subset(files[0] / "subset.pt")
    batches = make_batches(x, y, 16)
    exact = float(torch.trace(H))
    request = SpectrumRequest(trace_probes=400, density_steps=20, density_probes=40, dtype="float64")
    rows = _rows_by_quantity(compute_spectrum(model, batches, request, epoch=0))
    hutchinson, density = rows["trace"], rows["density_trace"]
    assert hutchinson["probes"] == 400 and density["probes"] == 40
    for row in (hutchinson, density, rows["density_mean"], rows["density_second_moment"]):
        assert row["stderr"] > 0 and row["converged"] is None
    assert density["value"] == pytest.approx(H.shape[0] * rows["density_mean"]["value"])
    assert abs(hutchinson["value"] - exact) <= 4 * hutchinson["stderr"]
    assert abs(density["value"] - exact) <= 4 * density["stderr"]
    assert abs(hutchinson["value"] - density["value"]) <= 4 * math.hypot(hutchinson["stderr"], density["stderr"])


def test_every_checkpoint_and_quantity_draws_its_own_probes_reproducibly(files):
    """The same weights measured as two checkpoints get independent probes; a rerun gets the same ones; one probe
    has no standard error."""
    _, model, _ = files
    x, y, _ = load_subset(files[0] / "subset.pt")
    batches = make_batches(x, y, 16)
    request = SpectrumRequest(trace_probes=4, frobenius_probes=4, density_steps=8, density_probes=1,
                              dtype="float64")
    first, second, again = (_rows_by_quantity(compute_spectrum(model, batches, request, epoch=e)) for e in (0, 1, 0))
    for quantity in ("trace", "frobenius", "density_trace"):
        assert first[quantity]["value"] != second[quantity]["value"]
        assert first[quantity]["value"] == again[quantity]["value"]
    assert first["density_trace"]["probes"] == 1 and math.isnan(first["density_trace"]["stderr"])


def test_the_job_logs_its_peak_memory_and_cpu_time(files):
    """What benchmarks/paper_memory.py reads: the kernel's peak, not Snakemake's benchmark samples (every 30 s)."""
    import re
    import subprocess
    import sys

    tmp_path, _, _ = files
    done = subprocess.run(
        [sys.executable, "-m", "hessian_spectra", "spectrum", "--checkpoint", str(tmp_path / "ckpt.pt"), "--data",
         str(tmp_path / "subset.pt"), "--out", str(tmp_path / "table.tsv"), "--top-k", "2", "--threads", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stderr.splitlines() if "resource use:" in line]
    peak, user, system = map(float, re.search(r"peak RSS (\d+) MiB, CPU ([\d.]+) s user ([\d.]+) s system", line).groups())
    assert 100 < peak < 10_000 and user > 0 and system >= 0
