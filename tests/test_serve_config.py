"""graphs/serve.yaml is a valid Serve config whose deployments are the graph's."""

from __future__ import annotations

from pathlib import Path

import yaml
from ray.serve.schema import ServeDeploySchema

from graphs.voice import app_builder

SERVE_YAML = Path(__file__).parents[1] / "graphs" / "serve.yaml"


def graph_deployment_names(application) -> set[str]:
    names, pending = set(), [application._bound_deployment]
    while pending:
        deployment = pending.pop()
        names.add(deployment.name)
        config = deployment._replica_config
        bound = (*config.init_args, *config.init_kwargs.values())
        pending += [arg._bound_deployment for arg in bound if hasattr(arg, "_bound_deployment")]
    return names


def test_serve_yaml_validates_and_names_every_deployment() -> None:
    config = ServeDeploySchema.model_validate(yaml.safe_load(SERVE_YAML.read_text()))
    [application] = config.applications
    assert config.http_options.host == "127.0.0.1"
    configured = {deployment.name for deployment in application.deployments}
    built = graph_deployment_names(app_builder(application.args))
    assert configured == built == {"Ingress", "SpeechToText", "Agent", "TextToSpeech", "LanguageModel"}


def test_shared_stages_autoscale_within_a_two_core_machine() -> None:
    [application] = ServeDeploySchema.model_validate(yaml.safe_load(SERVE_YAML.read_text())).applications
    for deployment in application.deployments:
        if deployment.name in ("SpeechToText", "TextToSpeech"):
            scaling = deployment.autoscaling_config
            assert 1 <= scaling["min_replicas"] <= scaling["max_replicas"]
            assert deployment.ray_actor_options.num_cpus * scaling["max_replicas"] <= 1
