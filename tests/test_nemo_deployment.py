"""The TextToSpeech deployment with the NeMo backend, on the session's Ray: the path a GPU cluster runs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ray import serve
from ray.serve.handle import DeploymentHandle

from benchmarks.nemo_checkpoints import SAMPLE_RATE, NemoCheckpoints
from common.settings import JuneSettings
from deployments.tts import TextToSpeech
from graphs.launch import deployment_problems
from speech.audio import decode
from tests.conftest import Graph

APP = "june-nemo-tts"


@pytest.fixture(scope="module")
def nemo_tts(graph: Graph, nemo_checkpoints: NemoCheckpoints) -> Iterator[DeploymentHandle]:
    settings = graph.settings.model_copy(update={
        "tts_backend": "nemo", "tts_nemo_spectrogram": nemo_checkpoints.spectrogram,
        "tts_nemo_vocoder": nemo_checkpoints.vocoder,
    })
    # No CPU of its own: the June graph already holds this machine's two.
    deployment = TextToSpeech.options(name="NemoTextToSpeech", ray_actor_options={"num_cpus": 0})
    handle = serve.run(deployment.bind(settings), name=APP, route_prefix=None)
    yield handle
    serve.delete(APP)


def test_nemo_speaks_ogg_opus_through_the_deployment(nemo_tts: DeploymentHandle) -> None:
    audio = nemo_tts.speak.remote("Hello from NeMo. This is the second sentence.", "ogg").result(timeout_s=120)
    assert audio[:4] == b"OggS"
    pcm = decode(audio)
    assert pcm.duration_s > 0.1


@pytest.mark.parametrize("audio_format", ["wav", "flac", "mp3"])
def test_nemo_replies_in_every_format(nemo_tts: DeploymentHandle, audio_format: str) -> None:
    audio = nemo_tts.speak.remote("One more sentence, please.", audio_format).result(timeout_s=120)
    assert decode(audio).duration_s > 0.05


def test_the_deployment_reports_nemo_at_its_sample_rate(nemo_tts: DeploymentHandle) -> None:
    import io
    import wave

    with wave.open(io.BytesIO(nemo_tts.speak.remote("Rate check.", "wav").result(timeout_s=120))) as wav:
        assert wav.getframerate() == SAMPLE_RATE and wav.getnchannels() == 1


def test_bad_checkpoint_settings_fail_the_replica_with_the_setting_named(graph: Graph) -> None:
    settings = JuneSettings(tts_backend="nemo")
    deployment = TextToSpeech.options(name="BrokenNemoTextToSpeech", ray_actor_options={"num_cpus": 0})
    with pytest.raises(RuntimeError, match="Deploying application june-nemo-broken failed"):
        serve.run(deployment.bind(settings), name="june-nemo-broken", route_prefix=None)
    try:
        assert "JUNE_TTS_NEMO_SPECTROGRAM is not set" in deployment_problems("june-nemo-broken")
    finally:
        serve.delete("june-nemo-broken")
