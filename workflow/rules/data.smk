"""Datasets: torchvision downloads with checksums into resources/, or a verified pre-downloaded `data_root`."""


localrules:
    download_dataset,
    check_data_root,


rule download_dataset:
    output:
        "resources/data/{dataset}/READY.json",
    log:
        "results/logs/download/{dataset}.log",
    conda:
        ENV
    params:
        mirror=f"--mirror {config['data_mirror']}" if config["data_mirror"] else "",
    shell:
        "hessian-spectra download --dataset {wildcards.dataset} --root resources/data "
        "{params.mirror} > {log} 2>&1"


rule check_data_root:
    output:
        "results/data_root/{dataset}.READY.json",
    log:
        "results/logs/data_root/{dataset}.log",
    conda:
        ENV
    params:
        root=config["data_root"],
    shell:
        "hessian-spectra download --dataset {wildcards.dataset} --root {params.root} --check-only --ready {output} > {log} 2>&1"
