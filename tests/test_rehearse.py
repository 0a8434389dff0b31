"""`hessian-spectra rehearse`: the rehearsal of configs/paper.yaml keeps every structural setting and scales only
what sets the time; its DAG has the paper's rules and job counts but for the per-epoch rules."""

from fnmatch import fnmatchcase

import pytest
import yaml

from conftest import REPO, planned_jobs, snakemake, training_jobs
from hessian_spectra.cli import main as cli
from hessian_spectra.rehearsal import Scale, rehearsal_name, scale_config
from hessian_spectra.runs import load_yaml, plan_runs, with_defaults
from hessian_spectra.train.absa import ABSASchedule

PAPER = REPO / "configs" / "paper.yaml"
SCHEMA = load_yaml(REPO / "workflow" / "schemas" / "config.schema.yaml")
RUN_KEYS = ("epochs", "steps_per_epoch", "valid_size", "schedule/milestones/*", "schedule/patience",
            "optimizer/patience", "optimizer/max_steps")
# Every key the rehearsal may change, as /-separated paths (`*` = any one key or list index); anything else that
# differs from paper.yaml (with the schema's defaults filled in) is a structural difference and fails the test.
SCALED = (
    ["name", "device", "gpus", "threads", "portable_cpu"]
    + [f"studies/*/defaults/{key}" for key in RUN_KEYS]
    + [f"studies/*/runs/*/{key}" for key in RUN_KEYS]
    + [f"studies/*/runs/*/grid/{key}/*" for key in ("epochs", "steps_per_epoch", "valid_size")]
    + ["studies/*/hessian_subset/size", "studies/*/hessian_subset/per_class"]
    + [f"studies/layerhessians/spectrum/{key}" for key in ("lanczos_steps", "probes", "max_steps", "batch_size")]
    + [f"studies/large_batch/spectrum/{key}" for key in ("max_steps", "batch_size")]
    + [f"studies/large_batch/landscape/{key}" for key in ("grid_points", "batch_size")]
    + [f"studies/sharpest_directions/spectrum/{key}" for key in ("max_steps", "batch_size")]
    + [f"studies/hessianflow/eigen/{key}" for key in ("max_steps", "batch_size")]
    + [f"studies/hessianflow/final/{key}" for key in ("trace_probes", "density_steps", "density_probes", "batch_size")]
    + [f"studies/init_chain_rule/tracking/{key}" for key in ("frobenius_probes", "max_steps", "batch_size")]
)
PER_EPOCH_RULES = {"layerhessians_spectrum"}  # one job per checkpoint: their counts scale with the epochs


def differences(a, b, path=()):
    """Every path at which two YAML trees differ: a key on one side only, another value, or another type."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if key not in a or key not in b:
                yield (*path, str(key))
            else:
                yield from differences(a[key], b[key], (*path, str(key)))
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (x, y) in enumerate(zip(a, b)):
            yield from differences(x, y, (*path, str(index)))
    elif type(a) is not type(b) or a != b:
        yield path


def scaled(path: tuple) -> bool:
    return any(
        len(parts) == len(path) and all(fnmatchcase(p, q) for p, q in zip(path, parts))
        for parts in (pattern.split("/") for pattern in SCALED)
    )


def lookup(tree, path):
    for key in path:
        tree = tree[int(key)] if isinstance(tree, list) else tree.get(key)
        if tree is None:
            return None
    return tree


@pytest.fixture(scope="module")
def paper():
    return with_defaults(load_yaml(PAPER), SCHEMA)


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    """The rehearsal as the command writes it."""
    out = tmp_path_factory.mktemp("rehearse") / "paper-rehearsal.yaml"
    assert cli(["rehearse", str(PAPER), "--out", str(out), "--schema",
                str(REPO / "workflow" / "schemas" / "config.schema.yaml")]) == 0
    return out


def test_structure_is_kept_and_only_listed_keys_are_scaled(paper, rehearsal):
    config = yaml.safe_load(rehearsal.read_text())
    diff = list(differences(paper, config))
    structural = ["/".join(path) for path in diff if not scaled(path)]
    assert not structural, f"structural differences from paper.yaml: {structural}"
    assert len(diff) > 40, "the rehearsal scales the time-setting keys"
    for path in diff:
        before, after = lookup(paper, path), lookup(config, path)
        if isinstance(before, (int, float)) and isinstance(after, (int, float)) and path[-1] != "gpus":
            assert after <= before, f"{'/'.join(path)}: {before} -> {after} is not scaled down"
    assert config["name"] == rehearsal_name(paper["name"]) == "paper-rehearsal"
    assert config["device"] == "cpu" and config["threads"] == 1 and config["portable_cpu"] is False


def test_the_generic_diff_finds_a_structural_change(paper, rehearsal):
    config = yaml.safe_load(rehearsal.read_text())
    config["studies"]["large_batch"]["runs"][0]["grid"]["batch_size"][-1] = 512
    config["studies"]["hessianflow"]["runs"][1]["optimizer"]["max_ratio"] = 8
    config["studies"]["layerhessians"]["runs"][2]["model_options"] = {"width": 0.25}
    del config["studies"]["sharpest_directions"]["defaults"]["augment"]
    structural = {"/".join(path) for path in differences(paper, config) if not scaled(path)}
    assert structural == {
        "studies/large_batch/runs/0/grid/batch_size/3",
        "studies/hessianflow/runs/1/optimizer/max_ratio",
        "studies/layerhessians/runs/2/model_options",
        "studies/sharpest_directions/defaults/augment",
    }


def test_every_run_is_kept_and_every_schedule_rule_fires(paper, rehearsal):
    runs = plan_runs(paper, SCHEMA)
    rehearsed = plan_runs(yaml.safe_load(rehearsal.read_text()), SCHEMA)
    assert len(rehearsed) == len(runs) == 56
    drop = ("epochs", "steps_per_epoch", "valid_size", "schedule", "subset", "hessian_subset", "variant",
            "key")  # the scaled fields, and those made from them

    def kept(run: dict) -> str:
        optimizer = {k: v for k, v in run["optimizer"].items() if k not in ("patience", "max_steps")}
        return str({**{k: v for k, v in run.items() if k not in drop}, "optimizer": optimizer,
                    "schedule": {k: v for k, v in run["schedule"].items() if k != "milestones"}})

    assert sorted(map(kept, runs.values())) == sorted(map(kept, rehearsed.values()))
    seen = set()
    for run in rehearsed.values():
        if run["optimizer"]["name"] == "nsgd":  # its per-epoch Lanczos scaled to the largest kk of its grid
            assert run["optimizer"]["max_steps"] == (10 if run["model"] == "simple_cnn_medium" and
                                                     run["dataset"] == "cifar10" else 5) >= run["optimizer"]["kk"]
            seen.add("nsgd")
        assert run["steps_per_epoch"] == 1 and 2 <= run["epochs"] <= 9
        schedule = run["schedule"]
        if schedule["kind"] == "step":  # lr during epoch e drops after each milestone m < e
            assert max(schedule["milestones"]) < run["epochs"], run["key"]
            seen.add("step")
        if run["optimizer"]["name"] == "absa":
            options = run["optimizer"]
            absa = ABSASchedule(options["max_ratio"], options["adv_ratio"], options["patience"], run["epochs"])
            adversarial = [absa.adversarial_ratio(epoch) for epoch in range(1, run["epochs"] + 1)]
            for _epoch in range(1, run["epochs"]):
                if absa.checking:
                    absa.observe(1.0)  # a constant eigenvalue: the ratio doubles by patience alone
            assert absa.ratio == options["max_ratio"] == 128 and not absa.checking, "the cap is reached"
            assert adversarial[0] > 0 and adversarial[-1] == 0, "adversarial samples, then none from epochs / 2"
            seen.add("absa")
    assert seen == {"step", "absa", "nsgd"}


def test_the_dag_has_the_papers_rules_and_job_counts_but_per_epoch(rehearsal, tmp_path):
    mirror = "data_mirror=http://127.0.0.1:9/{name}/"
    jobs = {}
    for name, configfile in (("paper", PAPER), ("rehearsal", rehearsal)):
        done = snakemake(tmp_path / name, "-n", "--cores", "2", "--config", mirror, configfile=configfile, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        jobs[name] = planned_jobs(done.stdout)
    paper, rehearsed = ({rule: n for rule, n in jobs[name].items() if not rule.startswith("train_")} for name in jobs)
    runs = plan_runs(yaml.safe_load(rehearsal.read_text()), SCHEMA)
    assert {rule: n for rule, n in jobs["rehearsal"].items() if rule.startswith("train_")} == training_jobs(
        runs.values()
    )
    assert sum(n for rule, n in jobs["paper"].items() if rule.startswith("train_")) == len(runs)
    assert rehearsed["layerhessians_spectrum"] == sum(
        run["epochs"] + 1 for run in runs.values() if run["study"] == "layerhessians"
    ) == 12 * 3
    assert {r: n for r, n in rehearsed.items() if r not in PER_EPOCH_RULES | {"total"}} == {
        r: n for r, n in paper.items() if r not in PER_EPOCH_RULES | {"total"}
    }


def test_scale_and_bad_input_are_refused(tmp_path):
    with pytest.raises(ValueError, match="epochs"):
        Scale(epochs=0)
    assert scale_config(load_yaml(PAPER), SCHEMA, Scale(epochs=3))["studies"]["layerhessians"]["defaults"]["epochs"] == 3
    out = tmp_path / "out.yaml"
    assert cli(["rehearse", str(tmp_path / "missing.yaml"), "--out", str(out)]) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("studies: {layerhessians: {runs: [{model: lenet}]}}\n")
    assert cli(["rehearse", str(bad), "--out", str(out), "--schema",
                str(REPO / "workflow" / "schemas" / "config.schema.yaml")]) == 2
    assert not out.exists()
