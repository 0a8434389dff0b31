"""The report's own pages (`snakemake --report`): every enabled study's table as an HTML page, and the findings
scorecard as a page, as the verdicts at a glance (which the report's start page, workflow/report/workflow.rst,
embeds) and as a picture. Cheap local jobs after the tables they show."""

from hessian_spectra import report_pages

REPORT_TABLES = {
    study.name: study.table
    for study in STUDIES.values()
    if study.table and study_enabled(study.name)
}
REPORT_TARGETS = [
    report_pages.table_page(study, table, CONFIG_NAME)
    for study, table in REPORT_TABLES.items()
] + [
    report_pages.scorecard_page(CONFIG_NAME),
    report_pages.verdicts_page(CONFIG_NAME),
    report_pages.verdicts_figure(CONFIG_NAME),
]


localrules:
    report_table,
    report_scorecard,


rule report_table:
    input:
        lambda wildcards: config_table(wildcards.study, REPORT_TABLES[wildcards.study]),
    output:
        report(
            report_pages.table_page("{study}", "{table}", CONFIG_NAME),
            caption="../report/tables.rst",
            category="{study}",
        ),
    log:
        config_log("report/{study}/{table}"),
    wildcard_constraints:
        study="|".join(REPORT_TABLES) or "no-table",
        table="|".join(Path(table).stem for table in REPORT_TABLES.values())
        or "no-table",
    conda:
        ENV
    shell:
        "hessian-spectra report table --table {input} --out {output} > {log} 2>&1"


rule report_scorecard:
    input:
        layout.findings(CONFIG_NAME),
    output:
        page=report_entry(
            report_pages.scorecard_page(CONFIG_NAME), "findings", "scorecard"
        ),
        verdicts=report_entry(
            report_pages.verdicts_page(CONFIG_NAME), "findings", "verdicts"
        ),
        figure=report_entry(
            report_pages.verdicts_figure(CONFIG_NAME), "findings", "verdicts"
        ),
    log:
        config_log("report/scorecard"),
    conda:
        ENV
    shell:
        "hessian-spectra report scorecard --findings {input} --page {output.page} "
        "--verdicts {output.verdicts} --figure {output.figure} > {log} 2>&1"
