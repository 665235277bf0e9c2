"""What the gateway can serve: tiers, deployments and the built-in echo stand-in.

Built from settings alone (no litellm import), so ``/v1/models`` and routing
answer while litellm is still loading.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.settings import LOCAL_ECHO, TIERS, Deployment, Settings, Tier

ECHO_PROVIDER = "aitp-local"
ECHO_LITELLM_MODEL = f"{ECHO_PROVIDER}/echo"


@dataclass(frozen=True, slots=True)
class Entry:
    """One deployment as litellm's Router sees it."""

    name: str
    model: str  # litellm model string
    tier: Tier | None
    litellm_params: dict[str, Any]
    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None
    extra_params: frozenset[str] = frozenset()

    @property
    def is_echo(self) -> bool:
        return self.model == ECHO_LITELLM_MODEL

    @property
    def label(self) -> str:
        return LOCAL_ECHO if self.is_echo else self.model


@dataclass(slots=True)
class Catalog:
    entries: dict[str, Entry] = field(default_factory=dict)
    tiers: dict[str, list[str]] = field(default_factory=dict)  # tier -> deployment names
    disabled: dict[str, str] = field(default_factory=dict)  # deployment name -> why

    def tier_is_echo(self, tier: str) -> bool:
        return all(self.entries[name].is_echo for name in self.tiers.get(tier, []))

    def known(self, model: str) -> bool:
        return model == "auto" or model in TIERS or model in self.entries

    def any_extra_params(self) -> frozenset[str]:
        """Provider-specific fields some deployment accepts (the set a request may name at all)."""
        return frozenset().union(*(e.extra_params for e in self.entries.values()))

    def extra_params(self, group: str) -> frozenset[str]:
        """Provider-specific fields that every deployment able to answer ``group`` accepts."""
        names = self.tiers.get(group) or ([group] if group in self.entries else [])
        sets = [self.entries[n].extra_params for n in names]
        return frozenset.intersection(*sets) if sets else frozenset()

    def router_model_list(self) -> list[dict[str, Any]]:
        """litellm Router ``model_list``: each deployment under its own name and under its tier."""
        out: list[dict[str, Any]] = []
        for entry in self.entries.values():
            out.append(_router_item(entry.name, entry))
        for tier, names in self.tiers.items():
            for name in names:
                out.append(_router_item(tier, self.entries[name]))
        return out


def _router_item(group: str, entry: Entry) -> dict[str, Any]:
    return {
        "model_name": group,
        "litellm_params": dict(entry.litellm_params),
        "model_info": {"id": f"{group}::{entry.name}", "aitp_deployment": entry.name},
    }


def _entry(deployment: Deployment, environ: Mapping[str, str], timeout_s: float) -> Entry:
    params: dict[str, Any] = {"model": deployment.model, **deployment.extra}
    if deployment.api_base:
        params["api_base"] = deployment.api_base
    key = deployment.resolved_key(dict(environ))
    if key:
        params["api_key"] = key
    elif deployment.api_key_env is None:
        params["api_key"] = "none"  # local OpenAI-compatible servers (vLLM, Ollama) accept any key
    params["timeout"] = deployment.timeout_s or timeout_s
    if deployment.forward_user:
        params["allowed_openai_params"] = ["user", *params.get("allowed_openai_params", [])]
    return Entry(
        name=deployment.name,
        model=deployment.model,
        tier=deployment.tier,
        litellm_params=params,
        input_cost_per_token=deployment.input_cost_per_token,
        output_cost_per_token=deployment.output_cost_per_token,
        extra_params=frozenset(deployment.extra_params),
    )


def build_catalog(settings: Settings, environ: Mapping[str, str]) -> Catalog:
    catalog = Catalog()
    env = dict(environ)
    for deployment in settings.models:
        if not deployment.is_configured(env):
            catalog.disabled[deployment.name] = f"{deployment.api_key_env} is not set"
            continue
        entry = _entry(deployment, env, settings.retries.timeout_s)
        catalog.entries[entry.name] = entry
        if entry.tier is not None:
            catalog.tiers.setdefault(entry.tier, []).append(entry.name)
    echo = Entry(name=LOCAL_ECHO, model=ECHO_LITELLM_MODEL, tier=None, litellm_params={"model": ECHO_LITELLM_MODEL})
    catalog.entries[LOCAL_ECHO] = echo
    for tier in TIERS:
        if not catalog.tiers.get(tier):
            # No provider configured for this tier: the echo stand-in answers, clearly labelled.
            catalog.tiers[tier] = [LOCAL_ECHO]
    return catalog
