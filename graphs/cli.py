"""`june prepare` readies the embedded models; `june serve` runs the graph in the foreground."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
import urllib.error
import urllib.request

from deployments.embedded import ModelNotFound, resolve_llm, resolve_piper_voice, resolve_whisper
from deployments.llm import ModelTooLargeForCpu
from deployments.settings import JuneSettings

log = logging.getLogger("june")
APP_NAME = "june"
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_worker_niceness": "0"}


def prepare(settings: JuneSettings) -> None:
    """Resolve (and convert once) every configured model; idempotent."""
    steps = [
        ("speech-to-text", lambda: resolve_whisper(settings.stt_model, settings.models_dir)),
        ("language model", lambda: resolve_llm(settings.llm_model, settings.models_dir)),
        ("text-to-speech", lambda: resolve_piper_voice(settings.tts_voice)),
    ]
    for number, (role, resolve) in enumerate(steps, 1):
        started = time.perf_counter()
        print(f"[{number}/{len(steps)}] {role}: ", end="", flush=True)
        path = resolve()
        print(f"{path} ({time.perf_counter() - started:.1f} s)", flush=True)


def wait_until_healthy(url: str, timeout_s: float, api_key: str | None) -> dict:
    deadline = time.monotonic() + timeout_s
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=10) as response:
                body = json.load(response)
                if body.get("status") == "ok":
                    return body
                last_error = json.dumps(body)
        except (urllib.error.URLError, OSError, ValueError) as error:
            last_error = str(error)
        time.sleep(1)
    raise TimeoutError(f"June did not become healthy in {timeout_s:.0f} s: {last_error}")


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def serve_forever(settings: JuneSettings) -> None:
    os.environ.update({k: v for k, v in RAY_ENV.items() if k not in os.environ})
    import ray
    from ray import serve

    from graphs.voice import build_app

    prepare(settings)
    print("starting Ray (dashboard on "
          f"http://127.0.0.1:{settings.dashboard_port}) ...", flush=True)
    ray.init(
        address="local",
        include_dashboard=True,
        dashboard_host="127.0.0.1",
        dashboard_port=settings.dashboard_port,
        log_to_driver=False,
    )
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        serve.start(http_options={"host": settings.host, "port": settings.port})
        print("deploying the graph (the language model takes 30-60 s on CPU) ...", flush=True)
        serve.run(build_app(settings), name=APP_NAME, route_prefix="/", blocking=False)
        url = f"http://{settings.host}:{settings.port}"
        wait_until_healthy(url, settings.startup_timeout_s, None)
        print(f"June is ready on {url}", flush=True)
        while True:
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        print("shutting down ...", flush=True)
        serve.shutdown()
        ray.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="june", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("prepare", help="resolve and convert the configured models (once)")
    commands.add_parser("serve", help="run the graph in the foreground until Ctrl-C")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='{"level": "%(levelname)s", "logger": "%(name)s", "message": "%(message)s"}')
    try:
        settings = JuneSettings()
        if args.command == "prepare":
            prepare(settings)
        else:
            serve_forever(settings)
    except (ModelNotFound, ModelTooLargeForCpu, TimeoutError) as error:
        print(f"\njune: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
