"""Placement profiles: where each deployment runs, how big it is and how it scales.

A profile is a Ray Serve config file (graphs/profiles/<name>.yaml). `serve run` / `serve deploy`
read it directly; `build_app` applies the same file's deployment options in code, so the graph is
placed the same way whichever way it is started.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from common.llm_client import LANGUAGE_MODEL

if TYPE_CHECKING:
    from ray.serve.schema import ServeDeploySchema

PROFILES_DIR = Path(__file__).parent / "profiles"
PROFILE_NAMES = ("cpu", "gpu", "cluster")
# Only the LLM may scale to zero: a cold start of the audio stages would make every voice
# request after a quiet spell wait for model loading, while the LLM's cost on a GPU can justify it.
SCALE_TO_ZERO_ALLOWED = {LANGUAGE_MODEL}


class ProfileError(ValueError):
    """A profile that does not exist, does not parse, or breaks one of June's placement rules."""


def profile_path(profile: str) -> Path:
    if profile in PROFILE_NAMES:
        return PROFILES_DIR / f"{profile}.yaml"
    path = Path(profile).expanduser()
    if path.suffix not in (".yaml", ".yml") or not path.is_file():
        raise ProfileError(f"unknown profile {profile!r}: use one of {', '.join(PROFILE_NAMES)} or a Serve config's path")
    return path


def load_profile(profile: str) -> ServeDeploySchema:
    from ray.serve.schema import ServeDeploySchema  # here: a CLI's --help does not wait for Ray Serve

    path = profile_path(profile)
    try:
        config = ServeDeploySchema.model_validate(yaml.safe_load(path.read_text()))
    except (yaml.YAMLError, ValidationError) as error:
        raise ProfileError(f"{path} is not a valid Serve config: {error}") from error
    if len(config.applications) != 1:
        raise ProfileError(f"{path} must describe exactly one application, June")
    check_placement_rules(config)
    return config


def check_placement_rules(config: ServeDeploySchema) -> None:
    for deployment in config.applications[0].deployments:
        scaling = deployment.autoscaling_config if isinstance(deployment.autoscaling_config, dict) else {}
        if scaling.get("min_replicas", 1) == 0 and deployment.name not in SCALE_TO_ZERO_ALLOWED:
            raise ProfileError(f"{deployment.name}: only the LanguageModel may scale to zero (min_replicas: 0)")
        if deployment.name == LANGUAGE_MODEL and "ray_actor_options" in deployment.model_fields_set:
            raise ProfileError(
                "LanguageModel: give the engine's resources as placement_group_bundles, not ray_actor_options"
            )


def deployment_options(config: ServeDeploySchema) -> dict[str, dict[str, Any]]:
    """Each deployment's options as `Deployment.options()` takes them."""
    return {
        deployment.name: deployment.model_dump(exclude_unset=True, exclude={"name"})
        for deployment in config.applications[0].deployments
    }
