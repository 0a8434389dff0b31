"""The study registry and what derives from it: a job's JSON settings and the flags they stand for, the per-run
jobs' inputs, and the config schema's study sections."""

import json
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from hessian_spectra import cli, job_settings, layout
from hessian_spectra.runs import ConfigError, check_config, plan_runs, runs_of, subset_key, with_defaults
from hessian_spectra.studies import built_in, config_schema, job_inputs, registry, workflow_schema

SCHEMA_FILE = REPO / "workflow" / "schemas" / "config.schema.yaml"
TOY = REPO / "tests" / "toy_study" / "toy_study.py"


def test_flags_spell_each_kind_of_value():
    settings = {"top_k": 5, "dense": True, "eigenvectors": False, "blocks": None, "directions": ["eigen", "random"],
                "peak_epoch": [["a=1"], ["b=2"]], "run": {"b": 1, "a": [2]}, "tol": 1e-4}
    assert job_settings.flags(settings) == [
        "--top-k", "5", "--dense", "--directions", "eigen", "random", "--peak-epoch", "a=1", "--peak-epoch", "b=2",
        "--run", '{"a":[2],"b":1}', "--tol", "0.0001"]


def test_expand_replaces_settings_in_place_and_names_a_bad_one():
    argv = ["--out", "x.tsv", "--settings", job_settings.to_json({"top_k": 3, "seed": None}), "--threads", "2"]
    assert job_settings.expand(argv) == ["--out", "x.tsv", "--top-k", "3", "--threads", "2"]
    with pytest.raises(ValueError, match="--settings: not JSON"):
        job_settings.expand(["--settings", "{top_k: 3"])
    with pytest.raises(ValueError, match="--settings: needs a JSON object"):
        job_settings.expand(["--settings", "[1, 2]"])


def test_a_bad_settings_argument_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["spectrum", "--settings", "{"])
    assert exit_.value.code == 2
    assert "--settings: not JSON" in capsys.readouterr().err.splitlines()[-1]


def test_the_built_in_studies_by_source():
    assert [(study.source, study.name) for study in built_in()] == [
        ("000", "large_batch"), ("001", "sharpest_directions"), ("002", "hessianflow"), ("003", "init_chain_rule"),
        ("004", "layerhessians")]
    for study in built_in():
        assert study.claims and all(claim.study == study.name for claim in study.claims)
        assert (REPO / "workflow" / study.rules).is_file()


def test_a_study_module_joins_the_registry_with_its_rule_file_beside_it():
    studies = registry([str(TOY)])
    assert list(studies)[-1] == "toy"
    assert Path(studies["toy"].rules) == TOY.with_suffix(".smk")
    with pytest.raises(ValueError, match="no such file"):
        registry([str(TOY.with_name("missing.py"))])
    with pytest.raises(ValueError, match="defines no STUDY"):
        registry([str(REPO / "tests" / "conftest.py")])


def test_the_schema_has_a_section_per_study_and_refuses_others():
    config = {"studies": {"toy": {"runs": [{"model": "mlp", "dataset": "digits", "batch_size": 8, "epochs": 1,
                                            "lr": 0.1}]}}}
    check_config(config, workflow_schema(SCHEMA_FILE, [str(TOY)]))
    assert with_defaults(config, workflow_schema(SCHEMA_FILE, [str(TOY)]))["studies"]["toy"]["trace_probes"] == 16
    with pytest.raises(ConfigError, match="'toy' was unexpected"):
        check_config(config, workflow_schema(SCHEMA_FILE))
    base = yaml.safe_load(SCHEMA_FILE.read_text())
    del base["$defs"]["hessianflow"]
    with pytest.raises(ValueError, match=r"study hessianflow: defines no schema"):
        config_schema(base, registry())


def default_plan():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    schema = workflow_schema(SCHEMA_FILE)
    return with_defaults(config, schema), plan_runs(config, schema)


def test_every_per_run_job_of_the_default_config_gets_flags_its_command_accepts():
    """Each built-in job's settings for each planned run, its files filled in, parse with its command's parser."""
    from hessian_spectra.studies import job_settings as settings_of

    config, runs = default_plan()
    commands = cli.available_commands()
    checked = 0
    for study in built_in():
        for job in study.jobs:
            for run in runs_of(runs, study.name):
                values = {"hessian": "full", "epoch": "0001"}
                wildcards = {name: values[name] for name in job.wildcards} | {"epoch": "0001"}
                inputs = job_inputs(job, config["studies"][study.name], run, "0001")
                outputs = {flag: path(run["key"]) for flag, path in job.outputs.items()}
                flags = settings_of(job, config["studies"][study.name], run, wildcards, inputs, outputs,
                                    {**job_settings.runtime(config), "threads": 1})
                words = job.command.split()
                parser, _module = cli.command_parser(words[0], commands[words[0]])
                parser.parse_args(words[1:] + job_settings.flags(json.loads(job_settings.to_json(flags))))
                checked += 1
    assert checked >= 10


def test_job_inputs_by_kind():
    config, runs = default_plan()
    study = {study.name: study for study in built_in()}
    run = runs_of(runs, "sharpest_directions")[0]
    files = layout.run_files(run["key"])
    inputs = job_inputs(study["sharpest_directions"].jobs[0], config["studies"]["sharpest_directions"], run)
    assert inputs == {"run_json": files.run_json, "checkpoints": files.checkpoints(run["epochs"]),
                      "subset": layout.subset(subset_key(run["subset"]))}
    run = runs_of(runs, "large_batch")[0]
    landscape = study["large_batch"].jobs[1]
    inputs = job_inputs(landscape, config["studies"]["large_batch"], run)
    assert inputs["checkpoint"] == layout.run_files(run["key"]).checkpoint(run["epochs"])
    assert inputs["eigenvectors"] == layout.final_spectrum(run["key"], "last_layer", "npz")


def test_the_workflow_plan_of_the_default_config():
    from hessian_spectra.workflow_plan import plan_workflow

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    plan = plan_workflow(config, SCHEMA_FILE)
    assert list(plan.studies) == [study.name for study in built_in()]
    assert set(plan.plans) == {"large_batch", "init_chain_rule", "layerhessians"}
    assert plan.config["study_modules"] == [] and "study_modules" not in config
    assert sum(len(variants) for variants in plan.training_variants.values()) == len(
        {run["variant"] for run in plan.runs.values()})
    config["studies"]["layerhessians"]["matching"] = {"peak_epoch": {"lenet/nowhere": 1}}
    with pytest.raises(ConfigError, match=r"peak_epoch\.lenet/nowhere: no such run"):
        plan_workflow(config, SCHEMA_FILE)
