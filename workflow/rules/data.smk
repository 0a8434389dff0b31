"""Datasets: torchvision downloads with checksums into resources/, or a verified pre-downloaded `data_root`; a
built-in dataset exported as an ImageFolder tree (what a run whose `dataset` is that folder reads); and the fixed,
seeded Hessian subsets, one file each, keyed by what defines them (dataset, preprocessing, selection).
"""

import json
import shlex

from hessian_spectra.data.catalog import DATASET_NAMES


localrules:
    download_dataset,
    check_data_root,


rule download_dataset:
    output:
        "resources/data/{dataset}/READY.json",
    log:
        layout.log("download/{dataset}"),
    conda:
        ENV
    params:
        # a function: the mirror's `{name}` placeholder is the library's, not a wildcard
        mirror=lambda wildcards: (
            f"--mirror {shlex.quote(config['data_mirror'])}"
            if config["data_mirror"]
            else ""
        ),
    shell:
        "hessian-spectra download --dataset {wildcards.dataset} --root resources/data "
        "{params.mirror} > {log} 2>&1"


rule check_data_root:
    output:
        "results/data_root/{dataset}.READY.json",
    log:
        layout.log("data_root/{dataset}"),
    conda:
        ENV
    params:
        root=config["data_root"],
    shell:
        "hessian-spectra download --dataset {wildcards.dataset} --root {params.root} --check-only --ready {output} > {log} 2>&1"


rule hessian_subset:
    input:
        lambda wildcards: dataset_ready(SUBSETS[wildcards.subset]["dataset"]),
    output:
        layout.subset("{subset}"),
    log:
        layout.log("subsets/{subset}"),
    conda:
        ENV
    params:
        spec=lambda wildcards: json.dumps(SUBSETS[wildcards.subset], sort_keys=True),
        data_root=lambda wildcards: dataset_root(SUBSETS[wildcards.subset]["dataset"]),
    shell:
        "hessian-spectra subset --spec {params.spec:q} --out {output} --data-root {params.data_root} > {log} 2>&1"


rule export_images:
    input:
        lambda wildcards: dataset_ready(wildcards.dataset),
    output:
        directory(layout.exported_images("{dataset}")),
    log:
        layout.log("export_images/{dataset}"),
    wildcard_constraints:
        dataset="|".join(DATASET_NAMES),
    conda:
        ENV
    params:
        data_root=lambda wildcards: dataset_root(wildcards.dataset),
    shell:
        "hessian-spectra export-images --dataset {wildcards.dataset} --out {output} "
        "--data-root {params.data_root} > {log} 2>&1"
