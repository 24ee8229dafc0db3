"""The `gpu` profile on a three-node Ray cluster on this machine (ray.cluster_utils.Cluster).

A head without GPUs, a worker that declares two GPUs and a CPU-only worker. The graph is the real
one with the embedded, CPU-sized models: replicas that ask for GPUs land on the GPU worker and run
on its CPU there (no CUDA on this machine), the rest stays off it. The profile is the real
graphs/profiles/gpu.yaml with only the autoscaling delays shortened, so that scaling up and down
fits in a test.

These tests need a Ray instance of their own, so they run in a pytest session of their own:
`pytest -m multinode` (`make test` runs both sessions).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from common.settings import JuneSettings
from graphs.launch import RAY_ENV, free_port, wait_until_healthy
from graphs.profiles import PROFILES_DIR
from tests.speech import say

pytestmark = pytest.mark.multinode

GPU_STAGES = {"SpeechToText", "TextToSpeech", "LanguageModel"}
CPU_STAGES = {"Ingress", "Agent", "Messenger"}
QUESTION = "What is the weather like in Paris today?"


@dataclass
class ThreeNodes:
    url: str
    head_id: str
    gpu_worker_id: str
    cpu_worker_id: str
    headers: dict[str, str]  # the owner key the Ingress made in the data dir on the head


def replica_nodes() -> dict[str, list[str]]:
    """Node IDs of the live replicas of each deployment."""
    from ray.util.state import list_actors

    nodes: dict[str, list[str]] = {}
    for actor in list_actors(filters=[("state", "=", "ALIVE")], limit=1000):
        if actor.class_name.startswith("ServeReplica:june:"):
            nodes.setdefault(actor.class_name.rsplit(":", 1)[-1], []).append(actor.node_id)
    return nodes


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(1)
    raise TimeoutError(f"{what} did not happen in {timeout_s:.0f} s; replicas: {replica_nodes()}")


def fast_scaling_gpu_profile(path: Path) -> Path:
    config = yaml.safe_load((PROFILES_DIR / "gpu.yaml").read_text())
    for deployment in config["applications"][0]["deployments"]:
        if "autoscaling_config" in deployment:
            deployment["autoscaling_config"] |= {"upscale_delay_s": 1, "downscale_delay_s": 8,
                                                 "metrics_interval_s": 0.5, "look_back_period_s": 2}
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def three_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreeNodes]:
    import os

    import ray
    from ray import serve
    from ray.cluster_utils import Cluster

    from graphs.launch import deploy

    for key, value in RAY_ENV.items():
        os.environ.setdefault(key, value)
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 2, "num_gpus": 0, "dashboard_host": "127.0.0.1", "dashboard_port": free_port()},
    )
    gpu_worker = cluster.add_node(num_cpus=4, num_gpus=2)
    cpu_worker = cluster.add_node(num_cpus=4, num_gpus=0)
    cluster.wait_for_nodes(timeout=180)
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        tmp = tmp_path_factory.mktemp("multinode")
        settings = JuneSettings(
            port=free_port(), data_dir=tmp / "data", startup_timeout_s=480, llm_seed=7,
            profile=str(fast_scaling_gpu_profile(tmp / "gpu-fast-scaling.yaml")),
        )
        url = deploy(settings, access_log=False)
        yield ThreeNodes(url, cluster.head_node.node_id, gpu_worker.node_id, cpu_worker.node_id,
                         settings.client_headers)
    finally:
        serve.shutdown()
        ray.shutdown()
        cluster.shutdown()


def test_each_replica_lands_on_the_node_its_resources_demand(three_nodes: ThreeNodes) -> None:
    nodes = replica_nodes()
    assert set(nodes) == GPU_STAGES | CPU_STAGES
    for stage in GPU_STAGES:
        assert set(nodes[stage]) == {three_nodes.gpu_worker_id}, stage
    for stage in CPU_STAGES:
        assert three_nodes.gpu_worker_id not in nodes[stage], stage


def test_the_graph_answers_a_voice_question_across_the_nodes(three_nodes: ThreeNodes) -> None:
    with httpx.Client(base_url=three_nodes.url, headers=three_nodes.headers, timeout=120) as http:
        reply = http.post("/v1/voice", files={"audio": ("q.ogg", say(QUESTION), "audio/ogg")})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert "weather" in body["transcript"].lower()  # tiny.en hears "Paris" as "pairs" in ~1 of 12 Piper renderings
    assert body["reply"].strip()
    assert body["audio"]


async def transcribe_with_retries(http: httpx.AsyncClient, audio: bytes, retries: list[int]) -> str:
    """What a careful client does: retry on 5xx and dropped connections, with a short backoff."""
    for attempt in range(30):
        try:
            response = await http.post("/v1/audio/transcriptions", files={"file": ("q.ogg", audio, "audio/ogg")})
            if response.status_code < 500:
                response.raise_for_status()
                return response.json()["text"]
        except httpx.TransportError:
            pass
        retries.append(attempt)
        await asyncio.sleep(min(0.5 * 2**attempt, 4))
    raise AssertionError("no answer after 30 attempts")


async def transcribe_load(nodes: ThreeNodes, clients: int, requests_per_client: int, retries: list[int],
                          during: Callable[[], None] | None = None) -> list[str]:
    audio = say(QUESTION)
    async with httpx.AsyncClient(base_url=nodes.url, headers=nodes.headers, timeout=120) as http:
        async def client() -> list[str]:
            return [await transcribe_with_retries(http, audio, retries) for _ in range(requests_per_client)]

        tasks = [asyncio.create_task(client()) for _ in range(clients)]
        if during is not None:
            await asyncio.to_thread(during)
        return [text for texts in await asyncio.gather(*tasks) for text in texts]


def test_autoscaling_adds_replicas_on_the_gpu_node_under_load_and_removes_them_after(
    three_nodes: ThreeNodes,
) -> None:
    assert len(replica_nodes()["SpeechToText"]) == 1
    peak: list[list[str]] = []

    def watch_scale_up() -> None:
        wait_for(lambda: len(replica_nodes().get("SpeechToText", [])) == 2, 120, "scaling SpeechToText up to 2")
        peak.append(replica_nodes()["SpeechToText"])

    retries: list[int] = []
    texts = asyncio.run(transcribe_load(three_nodes, clients=6, requests_per_client=10, retries=retries,
                                        during=watch_scale_up))
    assert len(texts) == 60 and len(set(texts)) == 1 and "weather" in texts[0].lower()  # every request answered
    assert peak and set(peak[0]) == {three_nodes.gpu_worker_id}
    wait_for(lambda: len(replica_nodes().get("SpeechToText", [])) == 1, 120, "scaling SpeechToText back to 1")


def test_killing_the_gpu_workers_replicas_mid_load_loses_no_retried_request(three_nodes: ThreeNodes) -> None:
    import ray
    from ray.util.state import list_actors

    def kill_speech_to_text_replicas() -> None:
        time.sleep(1)  # mid-load: the clients have requests in flight (Moonshine answers one in about 0.1 s)
        for actor in list_actors(filters=[("state", "=", "ALIVE")], limit=1000):
            if actor.class_name == "ServeReplica:june:SpeechToText" and actor.node_id == three_nodes.gpu_worker_id:
                ray.kill(ray.get_actor(actor.name, namespace=actor.ray_namespace), no_restart=True)

    retries: list[int] = []
    texts = asyncio.run(transcribe_load(three_nodes, clients=4, requests_per_client=24, retries=retries,
                                        during=kill_speech_to_text_replicas))
    assert len(texts) == 96 and len(set(texts)) == 1 and "weather" in texts[0].lower()  # every request answered
    assert retries, "the kill hit no request in flight, so nothing was shown"
    wait_until_healthy(three_nodes.url, 180)
    assert set(replica_nodes()["SpeechToText"]) == {three_nodes.gpu_worker_id}
