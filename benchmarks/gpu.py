"""The audio stages on a CUDA GPU: faster-whisper (CTranslate2) and the NeMo TTS backend.

    python -m benchmarks.gpu [--stt-models tiny.en base] [--nemo-spectrogram F.nemo --nemo-vocoder H.nemo]
                             [--repeats N] [--warmup N] [--samples N]

Writes `gpu.json` (and `gpu.png` when matplotlib is installed) to benchmarks/results. Without a
CUDA GPU it writes nothing and exits non-zero. Without NeMo checkpoints (flags or
JUNE_TTS_NEMO_SPECTROGRAM / JUNE_TTS_NEMO_VOCODER) it builds tiny random ones and labels their
timings as such. `--device cpu --output FILE` only checks this script; it never writes into
benchmarks/results.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Self

from benchmarks.pipeline import Stat, stat
from benchmarks.speech_samples import QUESTIONS, SpeechSample, speak_samples
from common.settings import JuneSettings
from speech.sentences import split_sentences

RESULTS = Path("benchmarks/results")
DEFAULT_OUTPUT = RESULTS / "gpu.json"
RANDOM_WEIGHTS = ("random tiny FastPitch + HiFi-GAN built by benchmarks/nemo_checkpoints.py: timings of random "
                  "weights (about one mel frame per character), not of a real voice")


@dataclass(frozen=True)
class Stage:
    name: str
    engine: str
    model: str
    device: str
    load_s: float
    real_time_factor: float
    latency: Stat
    audio_s: float
    peak_gpu_memory_mb: float | None
    gpu_memory: str  # how the peak was measured, or why there is none


def latency(values_s: list[float]) -> Stat:
    return stat([value * 1000 for value in values_s])


def cuda_missing() -> str | None:
    """Why the GPU stages cannot run here, or None when both engines see a CUDA device."""
    import ctranslate2
    import torch

    reasons = []
    if not torch.cuda.is_available():
        reasons.append(f"torch {torch.__version__} sees no CUDA device")
    if ctranslate2.get_cuda_device_count() == 0:
        reasons.append(f"CTranslate2 {ctranslate2.__version__} sees no CUDA device")
    return "; ".join(reasons) or None


def nvidia_smi(query: str, *args: str) -> list[list[str]]:
    """Rows of `nvidia-smi --query-<query>` as CSV fields; empty when nvidia-smi is missing or fails."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", f"--query-{query}", *args, "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    return [[field.strip() for field in line.split(",")] for line in out.splitlines() if line.strip()]


def process_gpu_memory_mb() -> float | None:
    """GPU memory this process holds (all its CUDA contexts included), as nvidia-smi reports it."""
    for pid, used in nvidia_smi("compute-apps=pid,used_memory"):
        if pid == str(os.getpid()) and used.isdigit():
            return float(used)
    return None


class MemoryPeak:
    """Samples this process's GPU memory from nvidia-smi while a stage runs (CTranslate2 has no peak counter)."""

    def __init__(self, interval_s: float = 0.2):
        self.interval_s = interval_s
        self.peak: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            used = process_gpu_memory_mb()
            if used is not None:
                self.peak = max(self.peak or 0.0, used)
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def measure_whisper(model: str, device: str, compute_type: str, samples: list[SpeechSample],
                    repeats: int, warmup: int, settings: JuneSettings) -> Stage:
    from speech.transcriber import Transcriber

    stage_settings = settings.model_copy(update={"stt_engine": "whisper", "stt_model": model, "stt_device": device,
                                                 "stt_compute_type": compute_type})
    with MemoryPeak() if device == "cuda" else nullcontext() as memory:
        started = time.perf_counter()
        transcriber = Transcriber(stage_settings)
        load_s = time.perf_counter() - started
        for sample in samples[:warmup]:
            transcriber.transcribe_bytes(sample.ogg)
        latencies = []
        for _ in range(repeats):
            for sample in samples:
                started = time.perf_counter()
                transcriber.transcribe_bytes(sample.ogg)
                latencies.append(time.perf_counter() - started)
        ran_on = transcriber.engine.model.model.device
    if memory is None:
        peak, how = None, "not on a GPU"
    elif memory.peak is None:
        peak, how = None, "nvidia-smi is missing or lists no process with this PID (e.g. in a container)"
    else:
        peak, how = memory.peak, "nvidia-smi used_memory of this process, sampled every 0.2 s (CUDA contexts included)"
    del transcriber
    gc.collect()
    audio_s = repeats * sum(sample.duration_s for sample in samples)
    return Stage(f"stt:{model}", f"faster-whisper {version('faster-whisper')} ({compute_type})", model, ran_on,
                 round(load_s, 3), round(sum(latencies) / audio_s, 4), latency(latencies), round(audio_s, 2),
                 peak, how)


def measure_nemo(spectrogram: Path, vocoder: Path, device: str, sentences: list[str], repeats: int,
                 warmup: int, label: str) -> Stage:
    import torch

    from speech.nemo import NemoBackend

    on_gpu = device == "cuda"
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    backend = NemoBackend(spectrogram, vocoder, device)
    load_s = time.perf_counter() - started
    for sentence in sentences[:warmup]:
        backend.synthesize_sentence(sentence)
    latencies, samples = [], 0
    for _ in range(repeats):
        for sentence in sentences:
            started = time.perf_counter()
            samples += backend.synthesize_sentence(sentence).size  # returns host memory: the GPU is done
            latencies.append(time.perf_counter() - started)
    ran_on = next(backend.vocoder.parameters()).device.type
    peak = round(torch.cuda.max_memory_allocated() / 2**20, 1) if on_gpu else None
    how = "torch.cuda.max_memory_allocated" if on_gpu else "not on a GPU"
    audio_s = samples / backend.sample_rate
    del backend
    gc.collect()
    return Stage("tts:nemo", f"NeMo {version('nemo_toolkit')}", label, ran_on, round(load_s, 3),
                 round(sum(latencies) / audio_s, 4), latency(latencies), round(audio_s, 2), peak, how)


def package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def gpu_facts(device: str) -> dict | None:
    if device != "cuda":
        return None
    import torch

    rows = nvidia_smi("gpu=name,driver_version,memory.total")
    name, driver, total = rows[0] if rows else (None, None, None)
    return {"name": torch.cuda.get_device_name(0), "nvidia_smi_name": name, "driver": driver,
            "memory_total_mb": float(total) if total else None, "cuda_runtime": torch.version.cuda,
            "device_count": torch.cuda.device_count()}


def plot(stages: list[Stage], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [s.name + ("\n(random weights)" if s.model == RANDOM_WEIGHTS else "") for s in stages]
    panels = [("median latency (ms), whisker to p95", [s.latency.median_ms for s in stages],
               [s.latency.p95_ms - s.latency.median_ms for s in stages]),
              ("real-time factor", [s.real_time_factor for s in stages], None),
              ("peak GPU memory (MiB)", [s.peak_gpu_memory_mb for s in stages], None)]
    figure, axes = plt.subplots(1, len(panels), figsize=(13, 3.8))
    for axis, (panel_title, values, spread) in zip(axes, panels):
        bars = axis.bar(names, [v or 0 for v in values], yerr=[[0] * len(values), spread] if spread else None,
                        capsize=3)
        axis.bar_label(bars, labels=["n/a" if v is None else f"{v:.4g}" for v in values])
        axis.set_title(panel_title, fontsize=10)
        axis.tick_params(axis="x", labelrotation=20)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def parse_args() -> argparse.Namespace:
    settings = JuneSettings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="cpu only checks this script and needs --output outside benchmarks/results")
    parser.add_argument("--output", type=Path, help=f"JSON file to write (default {DEFAULT_OUTPUT} on CUDA)")
    stt_models = list(dict.fromkeys(["tiny.en", "base", settings.stt_model]))
    parser.add_argument("--stt-models", nargs="+", default=stt_models,
                        help="embedded names or CTranslate2 Whisper folders (default tiny.en, base and JUNE_STT_MODEL)")
    parser.add_argument("--stt-compute-type", help="default float16 on cuda, int8 on cpu")
    parser.add_argument("--nemo-spectrogram", type=Path, default=settings.tts_nemo_spectrogram)
    parser.add_argument("--nemo-vocoder", type=Path, default=settings.tts_nemo_vocoder)
    parser.add_argument("--repeats", type=int, default=10, help="timed passes over the inputs, after warm-up")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls per stage before timing")
    parser.add_argument("--samples", type=int, default=len(QUESTIONS), help="spoken questions to use")
    args = parser.parse_args()
    if args.repeats < 1 or args.warmup < 0 or not 1 <= args.samples <= len(QUESTIONS):
        parser.error(f"need --repeats >= 1, --warmup >= 0 and 1 <= --samples <= {len(QUESTIONS)}")
    if (args.nemo_spectrogram is None) != (args.nemo_vocoder is None):
        parser.error("give both NeMo checkpoints (--nemo-spectrogram and --nemo-vocoder) or neither")
    if args.device == "cpu":
        if args.output is None:
            parser.error("--device cpu only checks the script: give --output FILE (outside benchmarks/results)")
        if RESULTS.resolve() in args.output.resolve().parents:
            parser.error(f"--device cpu figures are not GPU results: refusing to write into {RESULTS}")
    args.output = args.output or DEFAULT_OUTPUT
    args.stt_compute_type = args.stt_compute_type or ("float16" if args.device == "cuda" else "int8")
    return args


def main() -> None:
    args = parse_args()
    if args.device == "cuda" and (reason := cuda_missing()):
        raise SystemExit(f"benchmarks.gpu: no usable CUDA GPU here ({reason}); nothing was measured or written. "
                         "Run it on a machine with an NVIDIA GPU and CUDA builds of torch and CTranslate2 "
                         "(`--device cpu --output FILE` only checks the script).")
    started_at = datetime.now(UTC)
    settings = JuneSettings()
    # Input speech comes from Piper on the CPU, so that no GPU stage competes with it.
    piper = settings.model_copy(update={"tts_backend": "piper", "tts_device": "cpu"})
    samples = speak_samples(QUESTIONS[: args.samples], piper)
    sentences = [sentence for text in QUESTIONS[: args.samples] for sentence in split_sentences(text)]

    stages = []
    for model in args.stt_models:
        print(f"measuring whisper {model} on {args.device} ...", flush=True)
        stages.append(measure_whisper(model, args.device, args.stt_compute_type, samples, args.repeats,
                                      args.warmup, settings))
    with tempfile.TemporaryDirectory(prefix="june-nemo-") as scratch:
        if args.nemo_spectrogram is None:
            from benchmarks.nemo_checkpoints import build_checkpoints

            print("no NeMo checkpoints given: building random tiny ones (timings of random weights)", flush=True)
            spectrogram, vocoder = build_checkpoints(Path(scratch))
            label = RANDOM_WEIGHTS
        else:
            spectrogram, vocoder = args.nemo_spectrogram, args.nemo_vocoder
            label = f"{spectrogram.name} + {vocoder.name}"
        print(f"measuring NeMo TTS on {args.device} ...", flush=True)
        stages.append(measure_nemo(spectrogram, vocoder, args.device, sentences, args.repeats, args.warmup, label))
    for stage in stages:
        print(f"  {stage.name:<14} {stage.device:<5} median {stage.latency.median_ms:8.1f} ms  "
              f"p95 {stage.latency.p95_ms:8.1f} ms  RTF {stage.real_time_factor:.4f}  "
              f"peak GPU memory {stage.peak_gpu_memory_mb} MiB", flush=True)

    gpu = gpu_facts(args.device)
    report = {
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": args.device,
        "script_check_only": args.device != "cuda",
        "gpu": gpu,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    **{name: package_version(name) for name in ("torch", "ctranslate2", "faster-whisper",
                                                                 "nemo_toolkit")}},
        "stages_on_gpu": [stage.name for stage in stages if stage.device == "cuda"],
        "nemo_random_weights": args.nemo_spectrogram is None,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "inputs": {"questions": [{"text": s.text, "duration_s": round(s.duration_s, 2)} for s in samples],
                   "tts_sentences": len(sentences)},
        "stages": [asdict(stage) for stage in stages],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    written = [args.output]
    try:
        where = gpu["name"] if gpu else f"{args.device} (script check, not GPU figures)"
        plot(stages, f"June audio stages on {where}, {args.repeats} repeats", args.output.with_suffix(".png"))
        written.append(args.output.with_suffix(".png"))
    except ImportError:
        print("matplotlib is not installed: no plot", flush=True)
    print("wrote " + " and ".join(map(str, written)))


if __name__ == "__main__":
    main()
