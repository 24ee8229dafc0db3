"""The API's OpenAPI document stays what clients were built against (tests/fixtures/openapi.json). After a deliberate
change, rewrite it with `JUNE_UPDATE_OPENAPI=1 pytest tests/test_openapi.py` and review the diff."""

from __future__ import annotations

import json
import os
from pathlib import Path

from api.app import create_api
from api.callers import Keys
from api.idempotency import AnswerStore
from common.settings import JuneSettings

SNAPSHOT = Path(__file__).parent / "fixtures" / "openapi.json"


def test_the_openapi_document_is_unchanged(tmp_path: Path) -> None:
    settings = JuneSettings(_env_file=None, data_dir=tmp_path, auth="none")
    answers = AnswerStore(tmp_path / "requests.sqlite3", ttl_s=60, wait_s=1)
    app = create_api(settings, pipeline=None, keys=Keys.from_settings(settings), answers=answers, messenger=object())
    document = json.dumps(app.openapi(), indent=1, sort_keys=True) + "\n"
    if os.environ.get("JUNE_UPDATE_OPENAPI") == "1":
        SNAPSHOT.write_text(document)
    assert document == SNAPSHOT.read_text()
