"""Study `init_chain_rule` (seed 003): the chain-rule table of every run's tracking (its per-run job and plan:
hessian_spectra.studies.init_chain_rule) and all its figures in one cheap job."""

from hessian_spectra.studies.init_chain_rule.plan import ALL_SDS_FIGURE, TERMS_FIGURE

ICR_PLAN = PLANS["init_chain_rule"]
ICR_TABLE = config_table("init_chain_rule", STUDIES["init_chain_rule"].table)


localrules:
    init_chain_rule_table,
    init_chain_rule_figures,


rule init_chain_rule_table:
    input:
        [layout.chain_rule(run["key"]) for run in study_runs("init_chain_rule")],
    output:
        ICR_TABLE,
    log:
        config_log("init_chain_rule/chain_rule"),
    conda:
        ENV
    shell:
        "hessian-spectra init-chain-rule table --tables {input} --out {output} > {log} 2>&1"


rule init_chain_rule_figures:
    input:
        ICR_TABLE,
    output:
        sd_figures=[
            study_figure("init_chain_rule", name, "init_sd")
            for name in ICR_PLAN.sd_figures
        ],
        all_sds=study_figure("init_chain_rule", ALL_SDS_FIGURE),
        terms=study_figure("init_chain_rule", TERMS_FIGURE),
    log:
        config_log("init_chain_rule/figures"),
    conda:
        ENV
    shell:
        "hessian-spectra init-chain-rule figures --table {input} --out-dir $(dirname {output.terms}) > {log} 2>&1"
