"""Which model to benchmark: an OpenAI-compatible URL, the June graph already running, or one started here."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from benchmarks.coding.generation import Endpoint


def openai_base(url: str) -> str:
    """`http://host:8000` or `http://host:8000/v1` -> `http://host:8000/v1`."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"


def served_model(base_url: str, api_key: str | None) -> str:
    """The first model the endpoint lists (GET /v1/models)."""
    request = urllib.request.Request(f"{base_url}/models",
                                     headers={"Authorization": f"Bearer {api_key}"} if api_key else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            models = json.load(response)["data"]
    except (urllib.error.URLError, OSError, ValueError, KeyError) as error:
        raise ConnectionError(f"{base_url}/models did not list the served models ({error}); pass --model") from None
    if not models:
        raise ConnectionError(f"{base_url}/models lists no model; pass --model")
    return models[0]["id"]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
            return json.load(response).get("status") == "ok"
    except (urllib.error.URLError, OSError, ValueError):
        return False


@contextmanager
def resolve_endpoint(url: str | None, model: str | None, api_key: str | None) -> Iterator[Endpoint]:
    """The endpoint to use for the whole run; a June graph started for it is stopped afterwards."""
    if url:
        base = openai_base(url)
        yield Endpoint(base, model or served_model(base, api_key), api_key)
        return
    from common.settings import JuneSettings

    settings = JuneSettings()
    running = f"http://{settings.host}:{settings.port}"
    if _healthy(running):
        print(f"using the June graph running on {running}", flush=True)
        yield Endpoint(openai_base(running), model or settings.engine_model_name, api_key or settings.client_key)
        return
    import ray

    from graphs.launch import deploy, free_port, start_ray, stop

    if not ray.is_initialized():
        start_ray()
    settings = settings.model_copy(update={"port": free_port()})
    print(f"no June graph on {running}; starting one on port {settings.port} "
          "(the language model takes 30-60 s on CPU) ...", flush=True)
    try:
        url = deploy(settings, access_log=False)
        print(f"June is ready on {url}", flush=True)
        yield Endpoint(openai_base(url), model or settings.engine_model_name, api_key or settings.client_key)
    finally:
        print("stopping the June graph ...", flush=True)
        stop()


def default_api_key() -> str | None:
    return os.environ.get("OPENAI_API_KEY")
