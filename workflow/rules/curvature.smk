"""Per-run curvature jobs: one rule `<study>_<job>` per job of every study in the registry (hessian_spectra.studies),
one job per planned run of the study, its command given every flag as one JSON `--settings`.
"""

for _study in STUDIES.values():
    for _job in _study.jobs:

        rule:
            name:
                f"{_study.name}_{_job.name}"
            input:
                unpack(run_job_inputs(_study, _job)),
            output:
                **{flag: path(RUN_PATTERN) for flag, path in _job.outputs.items()},
            log:
                run_log(_job.log),
            benchmark:
                run_benchmark(_job.log)
            wildcard_constraints:
                **_job.wildcards,
                study=_study.name,
            group:
                _job.group
            conda:
                ENV
            threads: config["threads"]
            resources:
                gpu=gpu_request,
            params:
                command=_job.command,
                settings=run_job_settings(_study, _job),
            shell:
                "hessian-spectra {params.command} --settings {params.settings:q} > {log} 2>&1"
