"""The toy study's table and figure (tests/toy_study/toy_study.py defines the study and its per-run job)."""


rule toy_table:
    input:
        runs=[layout.run_files(run["key"]).run_json for run in study_runs("toy")],
        tables=[
            STUDIES["toy"].jobs[0].outputs["out"](run["key"])
            for run in study_runs("toy")
        ],
    output:
        config_table("toy", STUDIES["toy"].table),
    log:
        config_log("toy/table"),
    params:
        settings=lambda wildcards, input: job_json(
            {
                "study": "toy",
                "modules": config["study_modules"],
                "runs": input.runs,
                "tables": input.tables,
            }
        ),
    shell:
        "hessian-spectra study table --settings {params.settings:q} --out {output} > {log} 2>&1"


rule toy_figure:
    input:
        config_table("toy", STUDIES["toy"].table),
    output:
        report(config_figure("toy", "toy.png"), category="toy"),
    log:
        config_log("toy/figure"),
    params:
        settings=job_json({"study": "toy", "modules": config["study_modules"]}),
    shell:
        "hessian-spectra study figure --settings {params.settings:q} --table {input} --out {output} > {log} 2>&1"
