"""Time to first audio heard in June's voice page: a real Chromium talks to a running June.

Chromium (Debian's, driven by Playwright) hears a spoken question from a WAV file as its microphone
(`--use-file-for-fake-audio-capture`): the pipeline benchmark's eight questions (2.5-3.4 s) in turn,
each in a fresh browser. The page's hold-to-talk button is held for the question and released; the figure is the time from the release (the end of the capture) to the first reply audio
the page's audio element plays. Median of `--runs`; JSON, a plot and a screenshot of the page under
`benchmarks/results/`.

    python -m benchmarks.browser                                      # starts its own graph, 10 runs
    python -m benchmarks.browser --url http://127.0.0.1:8000          # a June started with `make run` (its owner key)
    python -m benchmarks.browser --quick                              # 2 runs, nothing written
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from benchmarks.speech_samples import QUESTIONS, SpeechSample, speak_samples
from common.owner_key import page_url
from common.settings import JuneSettings
from graphs.launch import deploy, free_port, start_ray, stop
from speech.audio import WHISPER_SAMPLE_RATE, Pcm, decode, encode_wav

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
LEAD_IN_S = 0.5  # before the words: the page opens the microphone as the button goes down


class ChromiumMissing(RuntimeError):
    pass


def chromium_path() -> str:
    for name in CHROMIUM_CANDIDATES:
        if found := shutil.which(name):
            return found
    raise ChromiumMissing("no Chromium on PATH: install it (apt-get install chromium, or `make browser-deps`)")


def spoken_question_wav(speech: bytes, folder: Path, lead_in_s: float = LEAD_IN_S, tail_s: float = 3.0) -> Path:
    """The microphone's content: a little silence, the question, then silence (Chromium loops the file)."""
    padding = (int(lead_in_s * WHISPER_SAMPLE_RATE), int(tail_s * WHISPER_SAMPLE_RATE))
    path = folder / "microphone.wav"
    path.write_bytes(encode_wav(Pcm(np.pad(decode(speech).samples, padding), WHISPER_SAMPLE_RATE)))
    return path


def launch(playwright: Playwright, microphone_wav: Path) -> Browser:
    return playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=[
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={microphone_wav}", "--autoplay-policy=no-user-gesture-required"])


@contextmanager
def june_page(browser: Browser, url: str, key: str | None) -> Iterator[Page]:
    """The page opened as June's printed address opens it: the key in the fragment, kept by the page."""
    context = browser.new_context(permissions=["microphone"], base_url=url)
    try:
        page = context.new_page()
        page.goto(page_url("", key) if key else "/")
        page.wait_for_function("window.june && document.querySelector('#health').textContent !== '…'")
        yield page
    finally:
        context.close()


def hold_to_talk(page: Page, hold_s: float) -> None:
    box = page.locator("#talk").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.wait_for_timeout(hold_s * 1000)
    page.mouse.up()


def wait_for_reply(page: Page, replies: int, timeout_s: float = 240) -> None:
    page.wait_for_function(f"window.june.stats.replies >= {replies}", timeout=timeout_s * 1000)


def hold_to_talk_turn(page: Page, question_s: float, timeout_s: float = 240) -> dict:
    """One hold-to-talk turn: the seconds from the release to the first reply audio played, what June heard
    and answered, and the stage timings it reported."""
    replies = page.evaluate("window.june.stats.replies")
    hold_to_talk(page, LEAD_IN_S + question_s + 0.4)
    page.wait_for_function("window.june.stats.firstAudioAt !== null", timeout=timeout_s * 1000)
    wait_for_reply(page, replies + 1, timeout_s)
    return page.evaluate("""() => ({
        first_audio_s: (june.stats.firstAudioAt - june.stats.captureEndedAt) / 1000,
        transcript: [...document.querySelectorAll('#log li.you')].at(-1).innerText,
        reply: [...document.querySelectorAll('#log li.june')].at(-1).innerText,
        timings_ms: june.stats.lastTimings})""")


def measure(url: str, key: str | None, runs: int, samples: list[SpeechSample], screenshot: Path | None = None) -> dict:
    """Run i asks samples[i % len(samples)], each in a fresh browser (the fake microphone is fixed per launch)."""
    turns = []
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as playwright:
        for run in range(runs):
            sample = samples[run % len(samples)]
            browser = launch(playwright, spoken_question_wav(sample.ogg, Path(folder)))
            try:
                with june_page(browser, url, key) as page:
                    page.click("#new-conversation")
                    turn = hold_to_talk_turn(page, sample.duration_s)
                    turns.append({"question": sample.text, "question_s": round(sample.duration_s, 2)} | turn)
                    print(f"run {run + 1}/{runs}: first audio {turn['first_audio_s']:.2f} s after the release; "
                          f"heard {turn['transcript']!r}", flush=True)
                    if screenshot is not None and run == runs - 1:
                        page.set_viewport_size({"width": 1100, "height": 640})
                        page.screenshot(path=screenshot)
            finally:
                browser.close()
    seconds = [turn["first_audio_s"] for turn in turns]
    # The page's own share: upload, the recorder's last chunk, decoding and starting playback, i.e. all
    # but what June itself timed from the request's arrival to its first audio.
    page_s = [turn["first_audio_s"] - turn["timings_ms"]["first_audio"] / 1000 for turn in turns]
    return {"runs": runs, "first_audio_s": [round(s, 3) for s in seconds],
            "median_first_audio_s": round(statistics.median(seconds), 3),
            "median_june_first_audio_s": round(statistics.median(t["timings_ms"]["first_audio"] for t in turns) / 1000, 3),
            "median_page_share_s": round(statistics.median(page_s), 3),
            "median_question_s": round(statistics.median(turn["question_s"] for turn in turns), 2),
            "browser": chromium_path(), "turns": turns}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = range(1, result["runs"] + 1)
    june = [turn["timings_ms"]["first_audio"] / 1000 for turn in result["turns"]]
    page = [total - server for total, server in zip(result["first_audio_s"], june)]
    figure, axes = plt.subplots(figsize=(7, 3.8))
    axes.bar(runs, june, label="June: request in → first audio out")
    axes.bar(runs, page, bottom=june, label="the page: upload, decode, start playing")
    axes.axhline(result["median_first_audio_s"], color="tab:red", linestyle="--",
                 label=f"median {result['median_first_audio_s']:.2f} s")
    axes.set_xlabel("run (a different question each, 8 in turn)")
    axes.set_ylabel("release → first audio played (s)")
    axes.set_title(f"Voice page, hold-to-talk, questions of {result['median_question_s']} s (median)")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running June; without it a graph is started for the run")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="2 runs, results not written")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results"))
    options = parser.parse_args()
    runs = 2 if options.quick else options.runs
    options.output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="june-browser-") as data:
        settings = JuneSettings(port=free_port(), data_dir=Path(data), llm_seed=7)
        samples = speak_samples(QUESTIONS, settings)  # the pipeline benchmark's questions, 2.5-3.4 s each
        screenshot = None if options.quick else options.output / "browser_page.png"
        if options.url:
            result = measure(options.url, JuneSettings().client_key, runs, samples, screenshot)
        else:
            print(f"browser: starting the graph ({settings.llm_model}) …", flush=True)
            start_ray()
            try:
                result = measure(deploy(settings, access_log=False), settings.client_key, runs, samples, screenshot)
            finally:
                stop()
    print(json.dumps(result, indent=2))
    if not options.quick:
        result["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        (options.output / "browser.json").write_text(json.dumps(result, indent=2) + "\n")
        plot(result, options.output / "browser.png")


if __name__ == "__main__":
    main()
