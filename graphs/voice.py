"""The June graph: Ingress → SpeechToText → Agent (→ LanguageModel) → TextToSpeech.

`serve run graphs.voice:app` runs it with settings from the environment; `build_app(settings)`
builds it for code, tests and `graphs/serve.yaml` (through `app_builder`).
"""

from __future__ import annotations

import logging

import ray
from ray.serve import Application

from deployments.agent import Agent
from deployments.ingress import Ingress
from deployments.llm import build_language_model
from deployments.settings import JuneSettings
from deployments.stt import SpeechToText
from deployments.tts import TextToSpeech

log = logging.getLogger(__name__)


def llm_on_gpu(settings: JuneSettings) -> bool:
    if settings.llm_device != "auto":
        return settings.llm_device == "gpu"
    # Only a running cluster can say whether it has GPUs; outside one, assume the local machine's.
    resources = ray.cluster_resources() if ray.is_initialized() else {}
    return resources.get("GPU", 0) > 0


def build_app(settings: JuneSettings) -> Application:
    llm = build_language_model(settings, on_gpu=llm_on_gpu(settings))
    return Ingress.bind(
        settings,
        SpeechToText.bind(settings),
        Agent.bind(settings, llm),
        TextToSpeech.bind(settings),
        llm,
    )


def app_builder(args: dict[str, str]) -> Application:
    """For serve config files: `args` are settings fields (lower-case names, without JUNE_)."""
    return build_app(JuneSettings(**args))


def __getattr__(name: str) -> Application:
    # `app` is built on first access, so importing this module to call build_app costs nothing.
    if name == "app":
        return build_app(JuneSettings())
    raise AttributeError(name)
