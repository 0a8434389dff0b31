"""Study `layerhessians` (seed 004): full and layer-block spectra after every epoch, their distances, figures.

Figures are named by `{model}_{dataset}` (their names in paths) and the 1-based layer-block index (from the model
and its options without torch, or the blocks planning found or the config lists): runs of one model and dataset
that differ only by their seed share each figure, and two that differ in anything else are refused at parse time.
"""

from hessian_spectra.runs import block_count, dataset_key, model_key

LAYERHESSIANS = config["studies"].get("layerhessians", {})
LH_RUNS = runs_of(RUNS, "layerhessians")
LH_TABLE = config_table("layerhessians", layout.STUDY_TABLES["layerhessians"])
LH_PROFILES = config_table("layerhessians", layout.MATCH_PROFILES)

# figure name `{model}_{dataset}` and label `<model>/<dataset>` -> its runs (one per seed); spectrum files of
# every epoch (0 = initial weights) per run key
LH_BY_NAME = {}
LH_BY_LABEL = {}
LH_SPECTRUM_FILES = {}
for _run in LH_RUNS:
    _name = f"{model_key(_run['model'])}_{dataset_key(_run['dataset'])}"
    _seeds = LH_BY_NAME.setdefault(_name, [])
    if _seeds and layout.without_seed(_seeds[0]["key"]) != layout.without_seed(
        _run["key"]
    ):
        raise WorkflowError(
            f"invalid config: studies.layerhessians: results/{_seeds[0]['key']} and "
            f"results/{_run['key']} have the same model and dataset but differ in more than their seed, and "
            "this study's figures are named by model and dataset; keep one of them (run the other with its "
            "own config)"
        )
    _seeds.append(_run)
    LH_BY_LABEL[f"{model_key(_run['model'])}/{dataset_key(_run['dataset'])}"] = _seeds
    LH_SPECTRUM_FILES[_run["key"]] = [
        layout.layer_spectrum(_run["key"], epoch, "npz")
        for epoch in range(_run["epochs"] + 1)
    ]

# peak-epoch overrides name a run as `<model>/<dataset>` and one of its epochs
for _label, _epoch in (
    LAYERHESSIANS["matching"]["peak_epoch"] if LH_RUNS else {}
).items():
    _seeds = LH_BY_LABEL.get(_label)
    if _seeds is None:
        raise WorkflowError(
            f"invalid config: studies.layerhessians.matching.peak_epoch.{_label}: no such run "
            f"(runs: {', '.join(LH_BY_LABEL)})"
        )
    if _epoch > _seeds[0]["epochs"]:
        raise WorkflowError(
            f"invalid config: studies.layerhessians.matching.peak_epoch.{_label}: epoch {_epoch} is past "
            f"the run's last epoch {_seeds[0]['epochs']}"
        )

LH_SPECTRUM_FLAGS = (
    (
        "--density-steps {lanczos_steps} --density-probes {probes} --grid-points {grid_points} "
        "--sigma-rel {sigma_rel} --top-k {top_k} --tol {tol} --max-steps {max_steps} --batch-size {batch_size}"
    ).format(**LAYERHESSIANS["spectrum"])
    if LH_RUNS
    else ""
)
LH_MATCH_FLAGS = (
    " ".join(
        [f"--first-epoch {LAYERHESSIANS['matching']['first_epoch']}"]
        + (
            [f"--eps {LAYERHESSIANS['matching']['eps']}"]
            if LAYERHESSIANS["matching"]["eps"] is not None
            else []
        )
        + [
            f"--peak-epoch {label}={epoch}"
            for label, epoch in LAYERHESSIANS["matching"]["peak_epoch"].items()
        ]
        + [
            f"--run {layout.run_files(run['key']).run_json} {' '.join(LH_SPECTRUM_FILES[run['key']])}"
            for run in LH_RUNS
        ]
    )
    if LH_RUNS
    else ""
)

TARGETS["layerhessians"] = (
    [
        config_figure("layerhessians", f"match_distros_{kind}.png")
        for kind in ("wasserstein", "peak")
    ]
    + [
        config_figure("layerhessians", f"training_eigvals_epochwise_{name}_{layer}.png")
        for name, runs in LH_BY_NAME.items()
        for layer in range(1, block_count(runs[0]) + 1)
    ]
    + [LH_TABLE]
    if LH_RUNS
    else []
)


localrules:
    layerhessians_match,
    layerhessians_match_figure,


rule layerhessians_spectrum:
    input:
        checkpoint=RUN_FILES.checkpoint("{epoch}"),
        subset=run_subset,
    output:
        table=layout.layer_spectrum(RUN_PATTERN, "{epoch}", "tsv"),
        npz=layout.layer_spectrum(RUN_PATTERN, "{epoch}", "npz"),
    log:
        run_log("layer_spectra/epoch_{epoch}"),
    benchmark:
        run_benchmark("layer_spectra/epoch_{epoch}")
    wildcard_constraints:
        study="layerhessians",
    group:
        "spectra_{model}_{dataset}_bs{batch_size}_seed{seed}_{variant}"
    conda:
        ENV
    threads: config["threads"]
    resources:
        gpu=gpu_request,
    params:
        seed=lambda wildcards: run_of(wildcards)["seed"],
        blocks=lambda wildcards: (
            f"--blocks {','.join(run_of(wildcards)['layer_blocks'])}"
            if "layer_blocks" in run_of(wildcards)
            else ""
        ),
        settings=LH_SPECTRUM_FLAGS,
        runtime=RUNTIME_FLAGS,
    shell:
        "hessian-spectra spectrum --checkpoint {input.checkpoint} --data {input.subset} "
        "--out {output.table} --npz {output.npz} --layers {params.blocks} {params.settings} --seed {params.seed} "
        "{params.runtime} --threads {threads} > {log} 2>&1"


rule layerhessians_match:
    input:
        runs=[layout.run_files(run["key"]).run_json for run in LH_RUNS],
        spectra=[path for run in LH_RUNS for path in LH_SPECTRUM_FILES[run["key"]]],
    output:
        table=LH_TABLE,
        profiles=LH_PROFILES,
    log:
        config_log("layerhessians/match"),
    conda:
        ENV
    params:
        settings=LH_MATCH_FLAGS,
    shell:
        "hessian-spectra layerhessians table {params.settings} --out {output.table} "
        "--profiles {output.profiles} > {log} 2>&1"


# One job draws all epochwise figures of a model and dataset, every seed in each (its start-up is most of a
# figure's time), so there is one rule per layer-block count, as for training; each figure stays a target of its own.
LH_LAYER_COUNTS = {}
for _name, _seeds in LH_BY_NAME.items():
    _count = block_count(_seeds[0])
    LH_LAYER_COUNTS.setdefault(_count, []).append(_name)

for _count, _names in sorted(LH_LAYER_COUNTS.items()):

    rule:
        name:
            f"layerhessians_epochwise_figures_{_count}_layers"
        input:
            runs=lambda wildcards: [
                layout.run_files(run["key"]).run_json
                for run in LH_BY_NAME[wildcards.name]
            ],
            spectra=lambda wildcards: [
                path
                for run in LH_BY_NAME[wildcards.name]
                for path in LH_SPECTRUM_FILES[run["key"]]
            ],
        output:
            [
                report(
                    config_figure(
                        "layerhessians",
                        f"training_eigvals_epochwise_{{name}}_{layer}.png",
                    ),
                    caption="../report/layerhessians/epochwise.rst",
                    category="layerhessians",
                    subcategory="{name}",
                )
                for layer in range(1, _count + 1)
            ],
        log:
            config_log("layerhessians/figures/training_eigvals_epochwise_{name}"),
        wildcard_constraints:
            name="|".join(_names),
        localrule: True
        conda:
            ENV
        params:
            runs=lambda wildcards: " ".join(
                f"--run {layout.run_files(run['key']).run_json} "
                + " ".join(LH_SPECTRUM_FILES[run["key"]])
                for run in LH_BY_NAME[wildcards.name]
            ),
        shell:
            "hessian-spectra layerhessians epochwise {params.runs} --out {output} > {log} 2>&1"


rule layerhessians_match_figure:
    input:
        LH_PROFILES,
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
        kind="wasserstein|peak",
    conda:
        ENV
    shell:
        "hessian-spectra layerhessians match-distros --profiles {input} --kind {wildcards.kind} "
        "--out {output} > {log} 2>&1"
