"""June beside Home Assistant's Wyoming servers (on June's Whisper and Piper files): transcription and speech.

    python -m benchmarks.peers [--quick] [--output benchmarks/results] [--june-url URL]

wyoming-faster-whisper and wyoming-piper are installed once into their own venv (PEERS_VENV) and run
offline on 127.0.0.1 with June's Whisper and Piper files and decoding settings; June's graph runs in
this process unless --june-url names one. After a warm-up of each item, peer and June take turns:
Piper-spoken questions (16 kHz s16le: Wyoming chunks, or the same samples as a WAV for
/v1/audio/transcriptions) timed to the transcript and scored by word error rate (jiwer, as
benchmarks.stt_models scores); three lengths of text (Wyoming Synthesize, /v1/audio/speech as streamed pcm) timed
to the first audio and to the end. The Wyoming client is the peers' own `wyoming` package: it needs
only the standard library, so their venv is on sys.path just while it is imported, and June's venv
is left as it is. Writes `peers.json` and `peers.png` to the output folder.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path

import httpx

from benchmarks.direct import since_ms
from benchmarks.pipeline import BUSY_LOAD, auth_headers, cpu_model, running_graph
from benchmarks.speech_samples import QUESTIONS, speak_samples
from benchmarks.stt_models import normalise, word_error_rate
from common.settings import JuneSettings
from graphs.launch import free_port
from models.devices import resolve_device
from models.embedded import resolve_piper_voice, resolve_whisper
from speech.audio import WHISPER_SAMPLE_RATE, decode, encode_wav, to_int16
from speech.transcriber import engine_label

PEERS_VENV = Path("~/.cache/june/peers-venv").expanduser()
PEER_PACKAGES = ("wyoming", "wyoming-faster-whisper", "wyoming-piper")
ENGINES = ("faster-whisper", "ctranslate2", "piper-tts", "onnxruntime")
READY_TIMEOUT_S = 120.0
HTTP_TIMEOUT_S = 120.0
CHUNK_BYTES = 2048  # 1024 samples of s16le, as Home Assistant sends them
SYSTEMS = ("peer", "june")
TEXTS = {
    "short": "Okay, the kitchen lights are off.",
    "medium": "Right now it's fourteen degrees and cloudy, with light rain expected after four this afternoon.",
    "long": "Good morning! You have three things on your calendar today, starting with the dentist at half "
            "past nine. After that, you're having lunch with Sam at the Italian place on Market Street, so "
            "leave a little early because of the roadworks. And don't forget that the library books are "
            "due back by six this evening.",
}
# speech_audio_bytes (s16le) checks that both sides said all of it; Piper varies the length a little.
MEASURES = ("transcription_ms", "wer", "speech_first_audio_ms", "speech_total_ms", "speech_audio_bytes")


@dataclass(frozen=True)
class Plan:
    clips: int
    texts: tuple[str, ...]
    repetitions: int


FULL = Plan(clips=len(QUESTIONS), texts=tuple(TEXTS), repetitions=5)
QUICK = Plan(clips=2, texts=("short", "long"), repetitions=2)


@dataclass(frozen=True)
class Clip:
    text: str
    pcm: bytes  # 16 kHz s16le mono, in Wyoming chunks to the peer
    wav: bytes  # the same samples in a WAV file, to June
    duration_s: float


@dataclass(frozen=True)
class Peer:
    name: str
    port: int
    command: list[str]


@dataclass(frozen=True)
class Heard:
    ms: float
    text: str


@dataclass(frozen=True)
class Spoken:
    first_audio_ms: float
    total_ms: float
    audio_bytes: int


Raw = dict[str, dict[str, dict[str, list[float]]]]  # measure -> system -> item -> one value a repetition


@dataclass(frozen=True)
class Report:
    machine: dict[str, str | int | float]
    versions: dict[str, dict[str, str]]
    peer_flags: dict[str, list[str]]  # after `python -m <server module>`
    june_url: str
    plan: Plan
    clips: dict[str, dict[str, str | float]]
    texts: dict[str, str]
    transcripts: dict[str, dict[str, str]]  # system -> clip -> its last transcript
    raw: Raw
    medians: dict[str, dict[str, dict[str, float]]]  # measure -> item -> system -> median
    ratios: dict[str, dict[str, float | None]]  # measure -> item -> June / peer


def peers_python() -> Path:
    """The peers' interpreter; their venv is made and filled on first use only."""
    python = PEERS_VENV / "bin" / "python"
    if not python.exists():
        print(f"[peers] creating {PEERS_VENV}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
    modules = ", ".join(package.replace("-", "_") for package in PEER_PACKAGES)
    if subprocess.run([str(python), "-c", f"import {modules}"], capture_output=True).returncode:
        print(f"[peers] pip install {' '.join(PEER_PACKAGES)} into {PEERS_VENV} ...", flush=True)
        subprocess.run([str(python), "-m", "pip", "install", "--progress-bar", "on", *PEER_PACKAGES], check=True)
    return python


def import_wyoming() -> None:
    """Import the peers' `wyoming` package (standard library only) without leaving their venv on sys.path."""
    site = str(next((PEERS_VENV / "lib").glob("python3*/site-packages")))
    sys.path.append(site)
    try:
        for module in ("asr", "audio", "client", "error", "tts"):  # imported here by name in the functions below
            importlib.import_module(f"wyoming.{module}")
    finally:
        sys.path.remove(site)


def peer_versions(python: Path) -> dict[str, str]:
    names = [*PEER_PACKAGES, *ENGINES]
    script = f"import json, importlib.metadata as m; print(json.dumps({{n: m.version(n) for n in {names!r}}}))"
    return json.loads(subprocess.run([str(python), "-c", script], check=True, capture_output=True, text=True).stdout)


def peers_for(python: Path, settings: JuneSettings, scratch: Path) -> dict[str, Peer]:
    """Both servers with the model files and the decoding settings June's graph uses."""
    device = resolve_device(settings.stt_device)
    compute_type = settings.stt_compute_type
    if compute_type == "auto":  # as speech.transcriber.WhisperEngine decides
        compute_type = "float16" if device == "cuda" else "int8"
    voice = resolve_piper_voice(settings.tts_voice)
    whisper_port, piper_port = free_port(), free_port()
    whisper = [str(python), "-m", "wyoming_faster_whisper", "--uri", f"tcp://127.0.0.1:{whisper_port}",
               "--model", str(resolve_whisper(settings.stt_model, settings.models_dir)), "--local-files-only",
               "--data-dir", str(scratch), "--device", device, "--compute-type", compute_type,
               "--beam-size", str(settings.stt_beam_size), "--cpu-threads", str(settings.stt_cpu_threads),
               "--vad-filter"]  # June transcribes with vad_filter=True
    piper = [str(python), "-m", "wyoming_piper", "--uri", f"tcp://127.0.0.1:{piper_port}",
             "--voice", voice.name.removesuffix(".onnx"), "--data-dir", str(voice.parent), "--local-files-only",
             "--sentence-silence", str(settings.tts_sentence_pause_s)]  # June's pause between sentences
    return {"whisper": Peer("faster-whisper", whisper_port, whisper), "piper": Peer("piper", piper_port, piper)}


@contextmanager
def running_peers(peers: dict[str, Peer], logs: Path) -> Iterator[dict[str, Peer]]:
    """Start every peer, wait until each accepts connections, and terminate them (by their PIDs) after."""
    processes: list[subprocess.Popen] = []
    try:
        for peer in peers.values():
            with open(logs / f"{peer.name}.log", "wb") as log:
                processes.append(subprocess.Popen(peer.command, stdout=log, stderr=subprocess.STDOUT))
        for peer, process in zip(peers.values(), processes):
            wait_ready(peer, process, logs / f"{peer.name}.log")
        yield peers
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_ready(peer: Peer, process: subprocess.Popen, log: Path) -> None:
    started = time.monotonic()
    while time.monotonic() - started < READY_TIMEOUT_S:
        if process.poll() is not None:
            raise RuntimeError(f"{peer.name} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", peer.port), timeout=1).close()
            print(f"[peers] {peer.name} (pid {process.pid}) ready on port {peer.port} after "
                  f"{time.monotonic() - started:.1f} s", flush=True)
            return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{peer.name} did not listen within {READY_TIMEOUT_S:.0f} s:\n{log.read_text()[-3000:]}")


def check_wyoming(event) -> None:
    from wyoming.error import Error

    if Error.is_type(event.type):
        raise RuntimeError(f"the peer failed: {Error.from_event(event).text}")


async def peer_transcribe(port: int, clip: Clip) -> Heard:
    from wyoming.asr import Transcribe, Transcript
    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.client import AsyncTcpClient

    audio_format = {"rate": WHISPER_SAMPLE_RATE, "width": 2, "channels": 1}
    async with AsyncTcpClient("127.0.0.1", port) as client:
        started = time.perf_counter()
        await client.write_event(Transcribe().event())
        await client.write_event(AudioStart(**audio_format).event())
        for offset in range(0, len(clip.pcm), CHUNK_BYTES):
            await client.write_event(AudioChunk(audio=clip.pcm[offset:offset + CHUNK_BYTES], **audio_format).event())
        await client.write_event(AudioStop().event())
        while (event := await client.read_event()) is not None:
            check_wyoming(event)
            if Transcript.is_type(event.type):
                return Heard(since_ms(started), Transcript.from_event(event).text)
    raise RuntimeError("faster-whisper closed the connection without a transcript")


async def june_transcribe(client: httpx.AsyncClient, url: str, clip: Clip) -> Heard:
    started = time.perf_counter()
    response = await client.post(f"{url}/v1/audio/transcriptions", data={"model": "whisper-1"},
                                 files={"file": ("question.wav", clip.wav, "audio/wav")})
    response.raise_for_status()
    return Heard(since_ms(started), response.json()["text"])


async def peer_speak(port: int, text: str) -> Spoken:
    from wyoming.audio import AudioChunk, AudioStop
    from wyoming.client import AsyncTcpClient
    from wyoming.tts import Synthesize

    first: float | None = None
    size = 0
    async with AsyncTcpClient("127.0.0.1", port) as client:
        started = time.perf_counter()
        await client.write_event(Synthesize(text=text).event())
        while (event := await client.read_event()) is not None:
            check_wyoming(event)
            if AudioChunk.is_type(event.type):
                first = since_ms(started) if first is None else first
                size += len(AudioChunk.from_event(event).audio)
            elif AudioStop.is_type(event.type) and first is not None:
                return Spoken(first, since_ms(started), size)
    raise RuntimeError("piper closed the connection before the end of the audio")


async def june_speak(client: httpx.AsyncClient, url: str, text: str) -> Spoken:
    body = {"model": "tts-1", "input": text, "voice": "alloy", "response_format": "pcm"}
    first: float | None = None
    size = 0
    started = time.perf_counter()
    async with client.stream("POST", f"{url}/v1/audio/speech", json=body) as response:
        response.raise_for_status()
        async for chunk in response.aiter_bytes():
            if chunk:
                first = since_ms(started) if first is None else first
                size += len(chunk)
    if first is None:
        raise RuntimeError("June's speech had no audio")
    return Spoken(first, since_ms(started), size)


def make_clips(settings: JuneSettings, count: int) -> dict[str, Clip]:
    """The first `count` questions spoken by Piper (OGG/Opus, as June's other benchmarks use), at 16 kHz."""
    clips = {}
    for index, sample in enumerate(speak_samples(QUESTIONS[:count], settings), 1):
        pcm = decode(sample.ogg)
        clips[f"q{index}"] = Clip(sample.text, to_int16(pcm.samples).tobytes(), encode_wav(pcm),
                                  round(pcm.duration_s, 2))
    return clips


async def measure(peers: dict[str, Peer], url: str, headers: dict[str, str], clips: dict[str, Clip],
                  texts: dict[str, str], repetitions: int) -> tuple[Raw, dict[str, dict[str, str]]]:
    """Repetition 0 is the warm-up, not recorded; in every one, peer and June take turns on each item."""
    raw: Raw = {measure: {system: {} for system in SYSTEMS} for measure in MEASURES}
    transcripts: dict[str, dict[str, str]] = {system: {} for system in SYSTEMS}

    def keep(repetition: int, system: str, item: str, values: dict[str, float]) -> None:
        for measure, value in values.items() if repetition else ():
            raw[measure][system].setdefault(item, []).append(round(value, 4))

    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S, headers=headers) as client:
        for repetition in range(repetitions + 1):
            tag = f"[{repetition}/{repetitions}]" if repetition else "[warm-up]"
            for key, clip in clips.items():
                for system in SYSTEMS:
                    heard = await (peer_transcribe(peers["whisper"].port, clip) if system == "peer"
                                   else june_transcribe(client, url, clip))
                    wer = word_error_rate([clip.text], [heard.text])
                    print(f"{tag} {system:<4} stt {key}: {heard.ms:5.0f} ms, WER {wer:.2f} {heard.text!r}", flush=True)
                    keep(repetition, system, key, {"transcription_ms": heard.ms, "wer": wer})
                    transcripts[system][key] = heard.text
            for key, text in texts.items():
                for system in SYSTEMS:
                    spoken = await (peer_speak(peers["piper"].port, text) if system == "peer"
                                    else june_speak(client, url, text))
                    print(f"{tag} {system:<4} tts {key}: first audio {spoken.first_audio_ms:5.0f} ms, "
                          f"all {spoken.total_ms:5.0f} ms, {spoken.audio_bytes} bytes", flush=True)
                    keep(repetition, system, key, {"speech_first_audio_ms": spoken.first_audio_ms,
                                                   "speech_total_ms": spoken.total_ms,
                                                   "speech_audio_bytes": spoken.audio_bytes})
    return raw, transcripts


def summarise(raw: Raw, clips: dict[str, Clip]) -> dict[str, dict[str, dict[str, float]]]:
    """Medians per item, plus `all` clips: the pooled median time and the error rate over all words."""
    medians = {measure: {item: {system: round(statistics.median(raw[measure][system][item]), 4)
                                for system in SYSTEMS} for item in raw[measure]["peer"]} for measure in MEASURES}
    counts = {key: len(normalise(clip.text).split()) for key, clip in clips.items()}
    for system in SYSTEMS:
        pooled = [ms for values in raw["transcription_ms"][system].values() for ms in values]
        medians["transcription_ms"].setdefault("all", {})[system] = round(statistics.median(pooled), 1)
        errors = sum(medians["wer"][key][system] * counts[key] for key in clips)
        medians["wer"].setdefault("all", {})[system] = round(errors / sum(counts.values()), 4)
    return medians


def ratios(medians: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, float | None]]:
    return {measure: {item: round(pair["june"] / pair["peer"], 3) if pair["peer"] else None
                      for item, pair in items.items()} for measure, items in medians.items()}


def machine_facts(settings: JuneSettings, load_at_start: float) -> dict[str, str | int | float]:
    return {"cpu_count": os.cpu_count() or 0, "cpu_model": cpu_model(), "load_average_1m_at_start": load_at_start,
            "platform": platform.platform(), "python": platform.python_version(),
            "june_speech_to_text": engine_label(settings), "peer_stt_model": settings.stt_model,
            "tts_voice": str(resolve_piper_voice(settings.tts_voice))}


def plot(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    panels = {"transcription_ms": "transcription (ms)", "wer": "word error rate",
              "speech_first_audio_ms": "speech: first audio (ms)", "speech_total_ms": "speech: all audio (ms)"}
    figure, axes = plt.subplots(1, 4, figsize=(18, 4.5), gridspec_kw={"width_ratios": [3, 3, 1.6, 1.6]})
    for axis, (measure, title) in zip(axes, panels.items()):
        items = list(report.medians[measure])
        positions = np.arange(len(items))
        for offset, system in zip((-0.2, 0.2), SYSTEMS):
            bars = axis.bar(positions + offset, [report.medians[measure][item][system] for item in items], 0.4,
                            label="Wyoming peer" if system == "peer" else "June")
            axis.bar_label(bars, fmt="%.2f" if measure == "wer" else "%.0f", fontsize=7)
        axis.set_xticks(positions, items)
        axis.set_title(title)
        axis.margins(y=0.2)
    axes[0].legend(loc="upper left", ncols=2)
    figure.suptitle(f"June vs Home Assistant's Wyoming servers (hearing: {report.machine['june_speech_to_text']} vs "
                    f"Whisper {report.machine['peer_stt_model']}; the same Piper voice), "
                    f"{report.machine['cpu_count']} CPUs, medians of {report.plan.repetitions}")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def summary(report: Report) -> str:
    """Transcription over all clips, speech per length of text."""
    rows = [("transcription_ms", "all"), ("wer", "all")]
    rows += [(measure, text) for measure in ("speech_first_audio_ms", "speech_total_ms") for text in report.texts]
    lines = [f"{'median':<30}{'peer':>10}{'June':>10}{'June/peer':>11}"]
    for measure, item in rows:
        pair, ratio = report.medians[measure][item], report.ratios[measure][item]
        digits = 3 if measure == "wer" else 0
        lines.append(f"{measure + ' ' + item:<30}{pair['peer']:>10.{digits}f}{pair['june']:>10.{digits}f}"
                     f"{'-' if ratio is None else f'{ratio:.2f}':>11}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 clips, 2 texts, 2 repetitions")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--june-url", help="a running June (default: start the graph in this process)")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    args.output.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    load_at_start = round(os.getloadavg()[0], 2)
    if load_at_start > BUSY_LOAD:
        print(f"warning: the 1-minute load average is {load_at_start}; other work here will skew timings", flush=True)
    settings = JuneSettings()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request in Ray's JSON log format
    python = peers_python()
    import_wyoming()
    versions = {"peers": peer_versions(python), "june": {name: version(name) for name in (*ENGINES, "ray")}}
    clips = make_clips(settings, plan.clips)
    texts = {name: TEXTS[name] for name in plan.texts}
    graph_settings = settings.model_copy(update={"port": free_port(), "host": "127.0.0.1"})
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="june-peers-")))
        peers = stack.enter_context(running_peers(peers_for(python, settings, scratch), scratch))
        url = stack.enter_context(nullcontext(args.june_url.rstrip("/")) if args.june_url
                                  else running_graph(graph_settings))
        raw, transcripts = asyncio.run(measure(peers, url, auth_headers(settings), clips, texts, plan.repetitions))

    medians = summarise(raw, clips)
    report = Report(
        machine=machine_facts(settings, load_at_start), versions=versions,
        peer_flags={peer.name: peer.command[3:] for peer in peers.values()},
        june_url=args.june_url or "in-process graph", plan=plan,
        clips={key: {"text": clip.text, "duration_s": clip.duration_s} for key, clip in clips.items()},
        texts=texts, transcripts=transcripts, raw=raw, medians=medians, ratios=ratios(medians))
    (args.output / "peers.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
    plot(report, args.output / "peers.png")
    print(summary(report))
    print(f"wrote {args.output / 'peers.json'} and {args.output / 'peers.png'} in {time.monotonic() - began:.0f} s")


if __name__ == "__main__":
    main()
