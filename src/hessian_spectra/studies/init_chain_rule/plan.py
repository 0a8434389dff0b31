"""Planning of study `init_chain_rule`: its init sds in config order and its figure names."""

from __future__ import annotations

from dataclasses import dataclass

from hessian_spectra.runs import ConfigError

ALL_SDS_FIGURE = "init_sd_all.png"
TERMS_FIGURE = "chain_rule_terms.png"


@dataclass(frozen=True)
class InitChainRulePlan:
    """The distinct init sds of the study's runs (config order) and one figure name per sd."""

    sds: list[float]
    sd_figures: list[str]

    def figures(self) -> list[str]:
        """File names of every figure of the study: one per sd, then all sds together and the chain-rule terms."""
        return [*self.sd_figures, ALL_SDS_FIGURE, TERMS_FIGURE]


def plan(runs: list[dict]) -> InitChainRulePlan:
    """The init sds of the study's planned ``runs`` and their figures (`init_sd_{sd:g}.png`: init_sd_1e-05.png,
    init_sd_1.png); a run without ``model_options.init_sd`` raises ``ConfigError``."""
    missing = [run["key"] for run in runs if run["model_options"].get("init_sd") is None]
    if missing:
        raise ConfigError(
            f"studies.init_chain_rule: run(s) {', '.join(missing)} set no model_options.init_sd "
            "(the study's figures are one per init sd)"
        )
    sds = list(dict.fromkeys(run["model_options"]["init_sd"] for run in runs))
    return InitChainRulePlan(sds=sds, sd_figures=[f"init_sd_{sd:g}.png" for sd in sds])
