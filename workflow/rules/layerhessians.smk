"""Study `layerhessians` (seed 004): the matching table and figures from the per-epoch spectra of every run (its
per-run jobs and plan: hessian_spectra.studies.layerhessians). One job draws all epochwise figures of a model and
dataset, every seed in each, so there is one figure rule per layer-block count, each figure a target of its own.
"""

from hessian_spectra.studies.layerhessians import epochwise_settings, match_settings
from hessian_spectra.studies.layerhessians.plan import MATCH_KINDS, epochwise_figures

LH_PLAN = PLANS["layerhessians"]
LH_SPECTRA = [path for paths in LH_PLAN.spectrum_files.values() for path in paths]


localrules:
    layerhessians_table,
    layerhessians_match_figure,


rule layerhessians_table:
    input:
        runs=[layout.run_files(key).run_json for key in LH_PLAN.spectrum_files],
        spectra=LH_SPECTRA,
    output:
        table=config_table("layerhessians", STUDIES["layerhessians"].table),
        profiles=config_table("layerhessians", layout.MATCH_PROFILES),
    log:
        config_log("layerhessians/match"),
    conda:
        ENV
    params:
        settings=lambda wildcards: job_json(
            match_settings(LH_PLAN, study_settings("layerhessians"))
        ),
    shell:
        "hessian-spectra layerhessians table --settings {params.settings:q} --out {output.table} "
        "--profiles {output.profiles} > {log} 2>&1"


for _count, _names in LH_PLAN.layer_counts.items():

    rule:
        name:
            f"layerhessians_epochwise_figures_{_count}_layers"
        input:
            spectra=lambda wildcards: [
                path
                for run in LH_PLAN.by_name[wildcards.name]
                for path in [layout.run_files(run["key"]).run_json]
                + LH_PLAN.spectrum_files[run["key"]]
            ],
        output:
            [
                report(
                    config_figure("layerhessians", figure),
                    caption="../report/layerhessians/epochwise.rst",
                    category="layerhessians",
                    subcategory="{name}",
                )
                for figure in epochwise_figures("{name}", _count)
            ],
        log:
            config_log("layerhessians/figures/training_eigvals_epochwise_{name}"),
        wildcard_constraints:
            name="|".join(_names),
        localrule: True
        conda:
            ENV
        params:
            settings=lambda wildcards: job_json(
                epochwise_settings(LH_PLAN, wildcards.name)
            ),
        shell:
            "hessian-spectra layerhessians epochwise --settings {params.settings:q} --out {output} > {log} 2>&1"


rule layerhessians_match_figure:
    input:
        config_table("layerhessians", layout.MATCH_PROFILES),
    output:
        report(
            config_figure("layerhessians", "match_distros_{kind}.png"),
            caption="../report/layerhessians/match_distros.rst",
            category="layerhessians",
            subcategory="matching",
        ),
    log:
        config_log("layerhessians/figures/match_distros_{kind}"),
    wildcard_constraints:
        kind="|".join(MATCH_KINDS),
    conda:
        ENV
    shell:
        "hessian-spectra layerhessians match-distros --profiles {input} --kind {wildcards.kind} "
        "--out {output} > {log} 2>&1"
