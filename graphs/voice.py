"""The June graph: Ingress → SpeechToText → Agent (→ LanguageModel) → TextToSpeech, and the Messenger (reminders,
the bots' outbox, the message ledger and the owner's inbox).

`serve run graphs.voice:app` runs it with settings from the environment; `build_app(settings)`
builds it for code, tests and the profiles in graphs/profiles/ (through `app_builder`).
"""

from __future__ import annotations

from ray.serve import Application, Deployment

from common.llm_client import LANGUAGE_MODEL
from common.settings import JuneSettings
from deployments.agent import Agent
from deployments.ingress import Ingress
from deployments.llm import build_language_model
from deployments.messenger import Messenger
from deployments.stt import SpeechToText
from deployments.tts import TextToSpeech
from graphs.profiles import deployment_options, load_profile
from models.language_model import resolve_language_model


def build_app(settings: JuneSettings) -> Application:
    """The graph, each deployment placed and scaled as `settings.profile` says; the language model's facts are
    worked out here, once, for the LanguageModel and the Agent."""
    options = deployment_options(load_profile(settings.profile))

    def placed(deployment: Deployment) -> Deployment:
        return deployment.options(**options.get(deployment.name, {}))

    facts = resolve_language_model(settings)
    llm = build_language_model(settings, facts, options.get(LANGUAGE_MODEL))
    tts = placed(TextToSpeech).bind(settings)
    return placed(Ingress).bind(
        settings,
        placed(SpeechToText).bind(settings),
        placed(Agent).bind(settings, facts, llm),
        tts,
        llm,
        placed(Messenger).bind(settings, tts),
    )


def app_builder(args: dict[str, str]) -> Application:
    """For serve config files: `args` are settings fields (lower-case names, without JUNE_)."""
    return build_app(JuneSettings(**args))


def __getattr__(name: str) -> Application:
    # `app` is built on first access, so importing this module to call build_app costs nothing.
    if name == "app":
        return build_app(JuneSettings())
    raise AttributeError(name)
