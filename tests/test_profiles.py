"""The placement profiles (graphs/profiles/*.yaml) are valid Serve configs that place June as documented."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from common.settings import JuneSettings
from graphs.profiles import PROFILE_NAMES, ProfileError, deployment_options, load_profile, profile_path
from graphs.voice import app_builder, build_app

GRAPH = {"Ingress", "SpeechToText", "Agent", "TextToSpeech", "LanguageModel", "Messenger"}
DATA_DIR_STAGES = {"Ingress", "Agent", "Messenger"}  # replayed answers; history, notes, reminders; the ledger


def bound_deployments(application) -> dict[str, object]:
    found, pending = {}, [application._bound_deployment]
    while pending:
        deployment = pending.pop()
        found[deployment.name] = deployment
        config = deployment._replica_config
        bound = (*config.init_args, *config.init_kwargs.values())
        pending += [arg._bound_deployment for arg in bound if hasattr(arg, "_bound_deployment")]
    return found


def options(profile: str) -> dict[str, dict]:
    return deployment_options(load_profile(profile))


@pytest.mark.parametrize("profile", PROFILE_NAMES)
def test_every_profile_is_a_serve_config_naming_every_deployment_of_the_graph(profile: str) -> None:
    config = ServeDeploySchema.model_validate(yaml.safe_load(profile_path(profile).read_text()))
    [application] = config.applications
    assert application.import_path == "graphs.voice:app_builder"
    assert application.args["profile"] == profile
    assert {deployment.name for deployment in application.deployments} == GRAPH
    assert set(bound_deployments(app_builder(application.args))) == GRAPH


@pytest.mark.parametrize("profile", PROFILE_NAMES)
def test_build_app_places_each_deployment_as_its_profile_says(profile: str) -> None:
    built = bound_deployments(build_app(JuneSettings(profile=profile)))
    for name, wanted in options(profile).items():
        deployment = built[name]
        if "ray_actor_options" in wanted:
            actor = deployment.ray_actor_options
            assert {key: actor.get(key) for key in wanted["ray_actor_options"]} == wanted["ray_actor_options"], name
        if "placement_group_bundles" in wanted:
            assert deployment._replica_config.placement_group_bundles == wanted["placement_group_bundles"], name
        if "autoscaling_config" in wanted:
            scaling = deployment._deployment_config.autoscaling_config
            for key, value in wanted["autoscaling_config"].items():
                assert getattr(scaling, key) == value, (name, key)
        assert deployment.max_ongoing_requests == wanted["max_ongoing_requests"], name


def test_cpu_profile_fits_a_two_core_machine_without_gpus() -> None:
    cpu = options("cpu")
    assert all(not o.get("ray_actor_options", {}).get("num_gpus") for o in cpu.values())
    for name in ("SpeechToText", "TextToSpeech"):
        scaling = cpu[name]["autoscaling_config"]
        assert 1 <= scaling["min_replicas"] <= scaling["max_replicas"]
        assert cpu[name]["ray_actor_options"]["num_cpus"] * scaling["max_replicas"] <= 1


@pytest.mark.parametrize("profile", ["gpu", "cluster"])
def test_gpu_profiles_give_vllm_a_whole_gpu_and_the_audio_stages_a_quarter(profile: str) -> None:
    placed = options(profile)
    [engine_bundle] = placed["LanguageModel"]["placement_group_bundles"]
    assert engine_bundle["GPU"] == 1
    for name in ("SpeechToText", "TextToSpeech"):
        assert placed[name]["ray_actor_options"]["num_gpus"] == 0.25
        assert placed[name]["ray_actor_options"]["memory"] > 0
    for name in ("Ingress", "Agent"):
        assert not placed[name]["ray_actor_options"].get("num_gpus")


def test_cluster_profile_asks_for_the_gpu_model_cluster_yaml_offers() -> None:
    cluster_yaml = yaml.safe_load((Path(__file__).parents[1] / "cluster.yaml").read_text())
    offered = {key.split(":", 1)[1] for node in cluster_yaml["available_node_types"].values()
               for key in node["resources"] if key.startswith("accelerator_type:")}
    placed = options("cluster")
    assert placed["SpeechToText"]["ray_actor_options"]["accelerator_type"] in offered
    [engine_bundle] = placed["LanguageModel"]["placement_group_bundles"]
    assert {key.split(":", 1)[1] for key in engine_bundle if key.startswith("accelerator_type:")} <= offered


def test_cluster_profile_keeps_what_opens_the_data_dir_on_the_head() -> None:
    """$JUNE_DATA_DIR is one node's disk: an Agent replica elsewhere would keep reminders the Messenger never
    fires and a history of its own. At their most replicas these stages still fit beside Ray's own processes."""
    cluster_yaml = yaml.safe_load((Path(__file__).parents[1] / "cluster.yaml").read_text())
    node_types, head = cluster_yaml["available_node_types"], cluster_yaml["head_node_type"]
    assert [name for name, node in node_types.items() if "june_data" in node["resources"]] == [head]
    offered, needed = node_types[head]["resources"], {"CPU": 0.0, "june_data": 0.0}
    for name, placed in options("cluster").items():
        actor = placed.get("ray_actor_options", {})
        assert (actor.get("resources", {}).get("june_data", 0) > 0) == (name in DATA_DIR_STAGES), name
        if name in DATA_DIR_STAGES:
            most = placed.get("autoscaling_config", {}).get("max_replicas", placed.get("num_replicas", 1))
            needed["CPU"] += most * actor["num_cpus"]
            needed["june_data"] += most * actor["resources"]["june_data"]
    assert needed["june_data"] <= offered["june_data"] and needed["CPU"] <= offered["CPU"] - 1


def write_profile(tmp_path: Path, edit) -> str:
    config = yaml.safe_load(profile_path("gpu").read_text())
    edit({d["name"]: d for d in config["applications"][0]["deployments"]})
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_the_language_model_may_scale_to_zero_when_configured(tmp_path: Path) -> None:
    path = write_profile(tmp_path, lambda d: d["LanguageModel"]["autoscaling_config"].update(min_replicas=0))
    built = bound_deployments(build_app(JuneSettings(profile=path)))
    assert built["LanguageModel"]._deployment_config.autoscaling_config.min_replicas == 0


@pytest.mark.parametrize("stage", ["SpeechToText", "TextToSpeech"])
def test_no_other_stage_may_scale_to_zero(tmp_path: Path, stage: str) -> None:
    path = write_profile(tmp_path, lambda d: d[stage]["autoscaling_config"].update(min_replicas=0))
    with pytest.raises(ProfileError, match=f"{stage}: only the LanguageModel may scale to zero"):
        load_profile(path)


def test_engine_resources_go_in_bundles_not_actor_options(tmp_path: Path) -> None:
    path = write_profile(tmp_path, lambda d: d["LanguageModel"].update(ray_actor_options={"num_gpus": 1}))
    with pytest.raises(ProfileError, match="placement_group_bundles"):
        load_profile(path)


@pytest.mark.parametrize("profile", ["gpu4", "", "../cluster.yaml", "/etc/passwd", "profiles/cpu"])
def test_unknown_profiles_are_refused_with_the_choices(profile: str) -> None:
    with pytest.raises(ProfileError, match="cpu, gpu, cluster"):
        load_profile(profile)


@pytest.mark.parametrize("text", ["{", "applications: 7", "just text", "applications: []"])
def test_malformed_profiles_are_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError):
        load_profile(str(path))
