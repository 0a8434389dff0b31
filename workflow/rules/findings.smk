"""The findings scorecard: every source's claims checked against this config's planned runs and the tables made
from them, every file it reads a declared input (one cheap job after all of them)."""

from hessian_spectra.evidence import Evidence

EVIDENCE = Evidence.of(
    CONFIG_NAME,
    RUNS,
    [study for study in STUDIES if study_enabled(study)],
    config["study_modules"],
)


localrules:
    findings,


rule findings:
    input:
        EVIDENCE.files(),
    output:
        report_entry(layout.findings(CONFIG_NAME), "findings", "findings"),
    log:
        config_log("findings"),
    conda:
        ENV
    params:
        plan=EVIDENCE.to_json(),
    shell:
        "hessian-spectra findings --plan {params.plan:q} --out {output} > {log} 2>&1"
