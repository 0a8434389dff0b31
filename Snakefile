"""hessian-spectra: reproduce the figures of five Hessian-spectrum studies (see README.md)."""

from snakemake.utils import min_version

min_version("9.0")


# config.yaml is the default run; a --configfile replaces it rather than merging into it. It is read once by our
# loader first, so that a YAML syntax error names the file and line.
if not workflow.config_settings.configfiles:
    from hessian_spectra.runs import ConfigError, load_yaml

    try:
        load_yaml(f"{workflow.basedir}/config.yaml")
    except ConfigError as err:
        raise WorkflowError(f"invalid config: {err}") from None

    configfile: f"{workflow.basedir}/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/curvature.smk"


# each study's own rules (tables and figures), from the registry
for _study in STUDIES.values():

    include: study_rule_file(_study)


include: "workflow/rules/findings.smk"
include: "workflow/rules/report.smk"


report: "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        all_targets(),
        REPORT_TARGETS,
