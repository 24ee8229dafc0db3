"""Ingress: the HTTP front of the graph. It serves `create_api` over the deployments' handles."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle
from ray.serve.metrics import Histogram

from api.app import create_api
from api.callers import Keys
from api.pipeline import HandlePipeline
from common.private_files import private_dir, protect_ray_token
from common.settings import JuneSettings

log = logging.getLogger("june.ingress")

LATENCY_BOUNDARIES_MS = [25, 50, 100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600]


@serve.deployment  # resources, limits and scaling: the placement profile (graphs/profiles)
@serve.ingress()
class Ingress:
    def __init__(
        self,
        settings: JuneSettings,
        stt: DeploymentHandle,
        agent: DeploymentHandle,
        tts: DeploymentHandle,
        llm: DeploymentHandle,
        messenger: DeploymentHandle,
    ):
        self.settings = settings
        self.messenger = messenger
        private_dir(settings.data_dir)  # `serve run` and `serve deploy` start here, not in `june serve`
        protect_ray_token()
        self.keys = Keys.from_settings(settings)  # the owner key in the data dir: made at the first start
        if self.keys.owner_key is not None:
            log.info("the API's key is the owner key; `june url` prints the page's address with it",
                     extra={"path": str(self.keys.owner_key.path)})
        latency = Histogram(
            "june_stage_latency_ms",
            description="Latency of each stage of a June request (stt, stt_engine: the engine's own part of stt, "
                        "think, tts, first_audio, total).",
            boundaries=LATENCY_BOUNDARIES_MS,
            tag_keys=("stage",),
        )
        self.pipeline = HandlePipeline(
            stt, agent, tts, llm, record_latency=lambda stage, ms: latency.observe(ms, tags={"stage": stage})
        )

    async def __serve_build_asgi_app__(self) -> FastAPI:
        return create_api(self.settings, self.pipeline, keys=self.keys, messenger=self.messenger)
