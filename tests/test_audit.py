"""The audit hook of ``python -m hessian_spectra``: what a process read, where its output went, its CPU settings."""

import os
import subprocess
import sys

from hessian_spectra import audit
from hessian_spectra.tables import write_rows


def test_a_process_records_what_it_read_and_not_what_it_wrote(tmp_path):
    table = tmp_path / "chain_rule.tsv"
    columns = ["run", "sd", "activation", "epoch", "step", "block", "quantity", "index", "value"]
    write_rows(table, columns, [dict.fromkeys(columns, "1") | {"block": "full", "quantity": "loss", "run": "s/runs/m/d/bs1/seed0/v"}])
    out, log, records = tmp_path / "all.tsv", tmp_path / "job.log", tmp_path / "audit"
    command = [sys.executable, "-m", "hessian_spectra", "init-chain-rule", "table", "--tables", str(table),
               "--out", str(out)]
    with open(log, "w") as handle:
        subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, cwd=tmp_path, check=True, timeout=300,
                       env={**os.environ, audit.VARIABLE: str(records)})
    (record,) = audit.load_records(records)
    assert record["argv"][1:] == command[3:] and record["cwd"] == str(tmp_path) and record["stdout"] == str(log)
    read = {path for path, mode, flags in record["opened"] if audit.is_read(mode, flags)}
    written = {path for path, mode, flags in record["opened"] if not audit.is_read(mode, flags)}
    assert str(table) in read and not any(path.startswith(str(tmp_path / ".all.tsv")) for path in read)
    assert any(path.startswith(str(tmp_path / ".all.tsv.")) for path in written), "the atomic write's temporary"
    assert out.is_file() and record["torch"] is None, "a table command needs no torch"
    assert set(record["environment"]) == set(audit.ENVIRONMENT)


def test_without_the_variable_nothing_is_recorded(tmp_path):
    environment = {k: v for k, v in os.environ.items() if k != audit.VARIABLE}
    subprocess.run([sys.executable, "-m", "hessian_spectra", "--help"], capture_output=True, check=True, cwd=tmp_path,
                   env=environment)
    assert list(tmp_path.iterdir()) == []


def test_reads_are_told_from_writes():
    assert audit.is_read("r", 0) and audit.is_read("rb", 0) and audit.is_read("r+b", 0) and audit.is_read("a+", 0)
    assert not audit.is_read("w", 0) and not audit.is_read("wb", 0) and not audit.is_read("x", 0)
    assert audit.is_read(None, os.O_RDONLY) and audit.is_read(None, os.O_RDWR)
    assert not audit.is_read(None, os.O_WRONLY | os.O_CREAT)
    assert not audit.is_read(None, os.O_RDWR | os.O_CREAT | os.O_EXCL), "mkstemp's new file"
    assert not audit.is_read(None, os.O_RDWR | os.O_TRUNC)


def test_a_folder_opened_to_remove_it_is_no_file_read(tmp_path):
    """shutil.rmtree os.opens each folder it empties: not a read of any file."""
    code = (
        "import shutil, sys; from hessian_spectra.audit import install_from_environment; install_from_environment(); "
        "shutil.rmtree(sys.argv[1])"
    )
    (tmp_path / "gone" / "sub").mkdir(parents=True)
    (tmp_path / "gone" / "sub" / "file").write_text("x")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "gone")], check=True,
                   env={**os.environ, audit.VARIABLE: str(tmp_path / "audit")})
    (record,) = audit.load_records(tmp_path / "audit")
    assert not [path for path, _, _ in record["opened"] if path.startswith(str(tmp_path / "gone"))]
    assert not (tmp_path / "gone").exists()
