"""The page (talk to June from a browser) and the probes: `/`, `/healthz`, `/v1/status`."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, JSONResponse

from api.schemas import Status
from api.shared import Shared
from speech.transcriber import engine_label

WEB_PAGE = Path(__file__).resolve().parents[1] / "web"


def router(shared: Shared) -> APIRouter:
    router = APIRouter()

    @router.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        """The voice page: talk to June from a browser."""
        return FileResponse(WEB_PAGE / "index.html", headers={"Cache-Control": "no-cache"})

    @router.get("/healthz")
    async def healthz() -> JSONResponse:
        """Serve's own view of every deployment: never queued behind user requests."""
        deployments = await shared.pipeline.health()
        healthy = all(state == "ok" for state in deployments.values())
        body = {"status": "ok" if healthy else "degraded", "deployments": deployments}
        return JSONResponse(body, status_code=200 if healthy else 503)

    @router.get("/v1/status", response_model=Status)
    async def status() -> Status:
        """For people (the page): health, and which models answer."""
        deployments = await shared.pipeline.health()
        settings = shared.settings
        voice = "NeMo FastPitch + HiFi-GAN" if settings.tts_backend == "nemo" else \
            f"Piper {'joe (embedded)' if settings.tts_voice == 'embedded' else Path(settings.tts_voice).stem}"
        return Status(status="ok" if all(state == "ok" for state in deployments.values()) else "degraded",
                      deployments=deployments, models={"speech_to_text": engine_label(settings),
                                                       "language_model": settings.engine_model_name,
                                                       "text_to_speech": voice})

    return router
