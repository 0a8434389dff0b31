"""Study `init_chain_rule` (seed 003): ||H||_F of dense1 and the chain-rule split H = G + (H - G) over training,
one tracking job per run over all its checkpoints, and one cheap job for all figures."""

ICR_RUNS = runs_of(RUNS, "init_chain_rule")
ICR_NO_SD = [
    run["key"] for run in ICR_RUNS if run["model_options"].get("init_sd") is None
]
if ICR_NO_SD:
    raise WorkflowError(
        f"studies.init_chain_rule: run(s) {', '.join(ICR_NO_SD)} set no model_options.init_sd "
        "(the study's figures are one per init sd)"
    )
# file names spell the sd as f"{sd:g}": init_sd_1e-05.png, init_sd_0.01.png, init_sd_1.png
ICR_SD_FIGURES = [
    config_figure("init_chain_rule", f"init_sd_{sd:g}.png")
    for sd in dict.fromkeys(run["model_options"]["init_sd"] for run in ICR_RUNS)
]
ICR_TERMS_FIGURE = config_figure("init_chain_rule", "chain_rule_terms.png")
ICR_ALL_SDS_FIGURE = config_figure("init_chain_rule", "init_sd_all.png")
ICR_TABLE = config_table("init_chain_rule", layout.STUDY_TABLES["init_chain_rule"])
if ICR_RUNS:
    TARGETS["init_chain_rule"] = ICR_SD_FIGURES + [
        ICR_ALL_SDS_FIGURE,
        ICR_TERMS_FIGURE,
        ICR_TABLE,
    ]


localrules:
    chain_rule_table,
    chain_rule_figures,


rule chain_rule_tracking:
    input:
        run=RUN_FILES.run_json,
        checkpoints=run_checkpoints,
        subset=run_subset,
    output:
        layout.chain_rule(RUN_PATTERN),
    log:
        run_log("chain_rule"),
    benchmark:
        run_benchmark("chain_rule")
    wildcard_constraints:
        study="init_chain_rule",
    conda:
        ENV
    threads: config["threads"]
    resources:
        gpu=gpu_request,
    params:
        # every key of the `tracking` section is a flag of the command
        tracking=lambda wildcards: " ".join(
            f"--{key.replace('_', '-')} {value}"
            for key, value in config["studies"]["init_chain_rule"]["tracking"].items()
        ),
        runtime=RUNTIME_FLAGS,
    shell:
        "hessian-spectra init-chain-rule track --run-json {input.run} --checkpoints {input.checkpoints} "
        "--subset {input.subset} --out {output} {params.tracking} {params.runtime} --threads {threads} "
        "> {log} 2>&1"


rule chain_rule_table:
    input:
        [layout.chain_rule(run["key"]) for run in ICR_RUNS],
    output:
        ICR_TABLE,
    log:
        config_log("init_chain_rule/chain_rule"),
    conda:
        ENV
    shell:
        "hessian-spectra init-chain-rule table --tables {input} --out {output} > {log} 2>&1"


rule chain_rule_figures:
    input:
        ICR_TABLE,
    output:
        sd_figures=[
            report(
                path,
                caption="../report/init_chain_rule/init_sd.rst",
                category="init_chain_rule",
            )
            for path in ICR_SD_FIGURES
        ],
        all_sds=report(
            ICR_ALL_SDS_FIGURE,
            caption="../report/init_chain_rule/init_sd_all.rst",
            category="init_chain_rule",
        ),
        terms=report(
            ICR_TERMS_FIGURE,
            caption="../report/init_chain_rule/chain_rule_terms.rst",
            category="init_chain_rule",
        ),
    log:
        config_log("init_chain_rule/figures"),
    conda:
        ENV
    params:
        out_dir=lambda wildcards, output: Path(output.terms).parent,
    shell:
        "hessian-spectra init-chain-rule figures --table {input} --out-dir {params.out_dir} > {log} 2>&1"
