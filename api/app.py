"""June's HTTP API: one FastAPI app over a `Pipeline` (the Ingress deployment supplies it), with the guard and the
error shape in one place and a router per surface (api/routes): the page, June's voice and chat, the
OpenAI-compatible routes, conversations and users, and with the Messenger's handle the bots' outbox, the Message API
and the inbox."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from ray.serve.handle import DeploymentHandle

from api.callers import Keys
from api.errors import install_error_handlers
from api.guard import Guard
from api.idempotency import AnswerStore
from api.realtime import OpenSessions
from api.replies import Pipeline
from api.routes import messaging, openai, page, users, voice
from api.schemas import ErrorBody
from api.shared import Shared
from common.settings import JuneSettings


def create_api(settings: JuneSettings, pipeline: Pipeline, *, keys: Keys | None = None,
               answers: AnswerStore | None = None, messenger: DeploymentHandle | None = None) -> FastAPI:
    app = FastAPI(title="June", summary="A self-hosted voice assistant", version="0.1.0",
                  responses={code: {"model": ErrorBody} for code in (400, 401, 403, 413, 415, 422, 503)})
    install_error_handlers(app, settings.retry_after_s)
    keys = keys or Keys.from_settings(settings)
    app.add_middleware(Guard, settings=settings, keys=keys)
    answers = answers or AnswerStore(settings.requests_db, settings.idempotency_ttl_s,
                                     wait_s=settings.agent_max_seconds + 120)
    shared = Shared(settings, pipeline, keys, answers, OpenSessions(settings.realtime_max_sessions), messenger)
    app.include_router(page.router(shared))
    app.mount("/web", StaticFiles(directory=page.WEB_PAGE), name="web")
    for surface in (voice, openai, users):
        app.include_router(surface.router(shared))
    if messenger is not None:
        app.include_router(messaging.router(settings, messenger))
    return app
