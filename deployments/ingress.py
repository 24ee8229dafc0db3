"""Ingress: the HTTP front of the graph. It serves `create_api` over the deployments' handles."""

from __future__ import annotations

from fastapi import FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle
from ray.serve.metrics import Histogram

from api.app import create_api
from api.pipeline import HandlePipeline
from common.settings import JuneSettings

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
        return create_api(self.settings, self.pipeline, messenger=self.messenger)
