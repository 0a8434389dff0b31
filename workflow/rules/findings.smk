"""The findings scorecard: every source's claims checked against the enabled studies' tables (one cheap job after
all of them)."""

FINDINGS_STUDIES = [study for study in STUDIES if study_enabled(study)]
TARGETS["findings"] = [layout.FINDINGS]


localrules:
    findings,


rule findings:
    input:
        targets=[
            target for study in FINDINGS_STUDIES for target in TARGETS.get(study, [])
        ],
        histories=[
            layout.run_files(run["key"]).history
            for study in FINDINGS_STUDIES
            for run in runs_of(RUNS, study)
        ],
    output:
        report(
            layout.FINDINGS,
            caption="../report/findings/findings.rst",
            category="findings",
        ),
    log:
        layout.log("findings"),
    conda:
        ENV
    params:
        studies=" ".join(FINDINGS_STUDIES),
    shell:
        "hessian-spectra findings --studies {params.studies} --out {output} > {log} 2>&1"
