"""GPU slots: concurrent jobs over N slots never share a device; SLURM's assignment is kept."""

import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest

from hessian_spectra.gpu_slots import claim_gpu_slot, device_pool

JOB = textwrap.dedent(
    """
    import json, os, sys, time
    from hessian_spectra.gpu_slots import claim_gpu_slot
    slot = claim_gpu_slot(2, sys.argv[1], poll_seconds=0.05)
    start = time.monotonic()
    time.sleep(0.4)
    print(json.dumps({"device": os.environ["CUDA_VISIBLE_DEVICES"], "slot": slot.slot,
                      "start": start, "end": time.monotonic()}))
    """
)


def _job(lock_dir, env):
    out = subprocess.run([sys.executable, "-c", JOB, str(lock_dir)], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout)


def _clean_env():
    return {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID", "SLURM_JOBID")}


def test_concurrent_jobs_over_two_slots_never_share_one(tmp_path):
    env = _clean_env()
    # three at a time over two slots: the third must wait for a free slot rather than share one
    with ThreadPoolExecutor(max_workers=3) as pool:
        records = list(pool.map(lambda _: _job(tmp_path, env), range(9)))
    assert {r["device"] for r in records} == {"0", "1"}
    for device in ("0", "1"):
        spans = sorted((r["start"], r["end"]) for r in records if r["device"] == device)
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert start >= end, f"two jobs held GPU {device} at once"
    # at some point both slots were busy at the same time (the jobs really ran concurrently)
    spans0 = [(r["start"], r["end"]) for r in records if r["device"] == "0"]
    spans1 = [(r["start"], r["end"]) for r in records if r["device"] == "1"]
    assert any(a < d and c < b for a, b in spans0 for c, d in spans1)


def test_slurm_assignment_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    slot = claim_gpu_slot(2, tmp_path)
    assert slot.device == "3" and slot.slot is None
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    assert not list(tmp_path.iterdir())


def test_user_visible_devices_form_the_pool(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("SLURM_JOBID", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert device_pool(8) == ["2", "5"]
    first = claim_gpu_slot(8, tmp_path)
    assert first.device == "2"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    second = claim_gpu_slot(8, tmp_path)
    assert second.device == "5"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    with pytest.raises(TimeoutError, match="no free GPU slot"):
        claim_gpu_slot(8, tmp_path, poll_seconds=0.01, timeout=0.05)
    first.release()
    second.release()


def test_released_slot_is_reused(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("SLURM_JOBID", raising=False)
    slot = claim_gpu_slot(1, tmp_path)
    assert slot.device == "0"
    slot.release()
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    again = claim_gpu_slot(1, tmp_path, timeout=1)
    assert again.device == "0"
    again.release()
