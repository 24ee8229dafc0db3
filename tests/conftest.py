"""One real June graph per test session: Ray local, Serve on a free loopback port, real models."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from common.owner_key import read_owner_key
from common.settings import JuneSettings
from graphs.launch import free_port

# Building a deployment reads Ray's runtime context, which starts Ray when it is not running: make
# that a private local instance, never an attachment to a cluster that happens to run here.
os.environ["RAY_ADDRESS"] = "local"

# `pytest --fast` (`make test-fast`): only what starts no Ray, no model, no server and no browser. A test is left
# out when it needs one of these fixtures, or its module starts such things in its own tests.
SLOW_FIXTURES = frozenset({"graph", "nemo_checkpoints", "playwright"})
SLOW_MODULES = frozenset({
    "test_cli.py", "test_engines.py", "test_gpu_benchmark.py", "test_llm_config.py", "test_llm_engines.py",
    "test_moonshine.py", "test_owner_key.py", "test_profiles.py", "test_turns.py",
})


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fast", action="store_true", help="only the tests that start no Ray, model, server or browser")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    return True if config.getoption("--fast") and collection_path.name in SLOW_MODULES else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--fast"):
        return
    slow = [item for item in items if SLOW_FIXTURES & set(getattr(item, "fixturenames", ()))]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item not in slow]


@dataclass
class Graph:
    url: str
    settings: JuneSettings

    @property
    def key(self) -> str:
        """The owner key the graph made in its data dir at its first start, as every local client reads it."""
        key = read_owner_key(self.settings.data_dir)
        assert key, f"no owner key in {self.settings.data_dir}"
        return key

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def client(self, **kwargs) -> httpx.Client:
        """An HTTP client with the owner key (another `Authorization` in `headers` replaces it)."""
        headers = self.headers | kwargs.pop("headers", {})
        return httpx.Client(base_url=self.url, timeout=120, headers=headers, **kwargs)


@pytest.fixture(scope="session")
def graph_settings(tmp_path_factory: pytest.TempPathFactory) -> JuneSettings:
    return JuneSettings(
        port=free_port(),
        data_dir=Path(tmp_path_factory.mktemp("june-data")),
        max_audio_bytes=2 * 1024 * 1024,
        max_audio_seconds=90,  # the spoken reply is transcribed back in one test
        max_text_chars=2000,
        startup_timeout_s=420,
        llm_model="qwen2.5-0.5b",  # the tests' model, for speed; June's default is the 1.5B
        llm_seed=7,  # the same question gets the same answer in every run
        max_completion_tokens=256,  # fuzzing asks for the most allowed: keep it quick (the coding run needs 256)
        max_completion_choices=1,
        outbox_max_wait_s=2,  # the bots' long-polls come back quickly, and fuzzing them costs seconds, not minutes
    )


@pytest.fixture(scope="session")
def graph(graph_settings: JuneSettings) -> Iterator[Graph]:
    from graphs.launch import deploy, start_ray, stop

    start_ray()
    try:
        yield Graph(deploy(graph_settings), graph_settings)
    finally:
        stop()


@pytest.fixture(scope="session")
def nemo_checkpoints(tmp_path_factory: pytest.TempPathFactory):
    """Tiny random FastPitch + HiFi-GAN `.nemo` files (no checkpoint can be downloaded here)."""
    from benchmarks.nemo_checkpoints import build_checkpoints

    return build_checkpoints(tmp_path_factory.mktemp("nemo"))


@pytest.fixture()
def client(graph: Graph) -> Iterator[httpx.Client]:
    with graph.client() as http:
        yield http
