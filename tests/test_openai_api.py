"""An unmodified `openai` client pointed at June."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.speech import decoded_seconds, say, words


@pytest.fixture()
def june(graph) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{graph.url}/v1", api_key=graph.key, timeout=120, max_retries=0)


def test_models_lists_june_and_the_bare_engine(june: openai.OpenAI, graph) -> None:
    assert [m.id for m in june.models.list()] == [graph.settings.llm_served_name, graph.settings.engine_model_name]


def test_transcriptions(june: openai.OpenAI) -> None:
    # Piper samples phoneme lengths: tiny.en heard "Turn on the lights." as "turn on the whites." 1 time in 25
    # here, and this longer request right 40 times in 40.
    spoken = say("Please turn on the kitchen lights.", "mp3")
    text = june.audio.transcriptions.create(model="whisper-1", file=("q.mp3", spoken))
    assert {"turn", "kitchen", "lights"} <= words(text.text), text.text


def test_verbose_transcription_has_segments(june: openai.OpenAI) -> None:
    result = june.audio.transcriptions.create(
        model="whisper-1", file=("q.flac", say("Good morning June.", "flac")), response_format="verbose_json")
    assert result.language == "en" and result.duration > 0.5
    assert result.segments and "morning" in words(result.text)


@pytest.mark.parametrize("response_format", ["mp3", "opus", "wav", "flac", "aac"])
def test_speech(june: openai.OpenAI, response_format: str) -> None:
    audio = june.audio.speech.create(model="tts-1", voice="alloy", input="Hello from June.",
                                     response_format=response_format)
    assert decoded_seconds(audio.content) > 0.5


def test_speech_streams_sentence_by_sentence(graph) -> None:
    """The body is chunked and begins before the last sentence is synthesized: the first chunk holds about the
    first sentence (1-2.5 s of 22 kHz s16 PCM), not the whole text."""
    text = "This is the first sentence. Here comes a second one, a little longer. And a third to finish."
    with httpx.stream("POST", f"{graph.url}/v1/audio/speech", timeout=60, headers=graph.headers, json={
            "model": "tts-1", "voice": "alloy", "input": text, "response_format": "pcm"}) as response:
        assert response.status_code == 200 and response.headers["transfer-encoding"] == "chunked"
        chunks = [chunk for chunk in response.iter_raw() if chunk]
    seconds = [len(chunk) / 2 / 22_050 for chunk in chunks]
    assert len(chunks) >= 3 and 1.0 < seconds[0] < 2.5 < sum(seconds), seconds


def test_june_answers_openai_clients_through_the_agent(june: openai.OpenAI, graph) -> None:
    completion = june.chat.completions.create(
        model=graph.settings.llm_served_name, user="openai-client",
        messages=[{"role": "system", "content": "You are a pirate."},
                  {"role": "user", "content": "What is 12 times 7?"}])
    assert "84" in completion.choices[0].message.content  # the calculator, not the model's guess
    assert completion.model == "june" and completion.usage.total_tokens == 0  # a pattern answered: no model call
    asked = june.chat.completions.create(model=graph.settings.llm_served_name, user="openai-client",
                                         messages=[{"role": "user", "content": "Who wrote Hamlet?"}])
    assert asked.choices[0].message.content.strip() and asked.usage.total_tokens > 0


def test_june_streams_to_openai_clients(june: openai.OpenAI, graph) -> None:
    stream = june.chat.completions.create(
        model=graph.settings.llm_served_name, stream=True,
        messages=[{"role": "user", "content": "My name is Ada."}, {"role": "assistant", "content": "Hello Ada!"},
                  {"role": "user", "content": "Say hello to me in one short sentence."}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() and chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize(("options", "error"), [
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]},
     openai.BadRequestError),
    ({"n": 3}, openai.UnprocessableEntityError),
    ({"user": "bad user id!"}, openai.UnprocessableEntityError),
    ({"messages": [{"role": "assistant", "content": "Hi"}]}, openai.UnprocessableEntityError),
    ({"messages": [{"role": "user", "content": ""}]}, openai.UnprocessableEntityError),
])
def test_june_refuses_what_it_cannot_do_clearly(june: openai.OpenAI, graph, options: dict, error) -> None:
    request = {"model": graph.settings.llm_served_name, "messages": [{"role": "user", "content": "hi"}], **options}
    with pytest.raises(error):
        june.chat.completions.create(**request)


@pytest.mark.parametrize("model", ["june", "engine"])
def test_a_harmony_shaped_message_is_a_client_error(graph, model: str) -> None:
    """vLLM parses a message with an `author` instead of a `role` as a Harmony message, an object, not a dict
    (found by fuzzing), which vLLM's chat renderer cannot take: a 422 in June's error shape."""
    name = graph.settings.llm_served_name if model == "june" else graph.settings.engine_model_name
    response = httpx.post(f"{graph.url}/v1/chat/completions", timeout=120, headers=graph.headers, json={
        "model": name, "max_tokens": 5,
        "messages": [{"author": {"role": "user"}, "content": [{"type": "text", "text": "hi"}]}]})
    assert response.status_code == 422, response.text
    assert "messages[0]" in response.json()["error"]["message"]


def test_chat_completion(june: openai.OpenAI, graph) -> None:
    completion = june.chat.completions.create(
        model=graph.settings.engine_model_name, max_tokens=30,
        messages=[{"role": "system", "content": "Answer briefly."},
                  {"role": "user", "content": "What is the capital of France?"}])
    assert completion.choices[0].message.content.strip()
    assert completion.usage.completion_tokens <= 30


def test_chat_completion_stream(june: openai.OpenAI, graph) -> None:
    stream = june.chat.completions.create(
        model=graph.settings.engine_model_name, max_tokens=20, stream=True,
        messages=[{"role": "user", "content": "Count to five."}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(chunks) > 2 and text.strip()
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_tools_are_passed_through(june: openai.OpenAI, graph) -> None:
    """Tool definitions reach the engine; with tool_choice none it answers in text."""
    tools = [{"type": "function", "function": {
        "name": "get_time", "description": "The current time", "parameters": {"type": "object", "properties": {}}}}]
    completion = june.chat.completions.create(
        model=graph.settings.engine_model_name, max_tokens=20, tools=tools, tool_choice="none",
        messages=[{"role": "user", "content": "What time is it?"}])
    assert completion.choices[0].message.content is not None


def test_unknown_model_is_a_clear_404(june: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        june.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])


def test_engine_errors_keep_their_status(june: openai.OpenAI, graph) -> None:
    over_the_window = [{"role": "user", "content": "the cat sat on the mat. " * 1000}]  # ~7000 tokens, 24000 chars
    for stream in (False, True):
        with pytest.raises(openai.APIStatusError) as refused:
            list(june.chat.completions.create(model=graph.settings.engine_model_name, max_tokens=8, stream=True,
                                              messages=over_the_window)) if stream else \
                june.chat.completions.create(model=graph.settings.engine_model_name, max_tokens=8,
                                             messages=over_the_window)
        assert refused.value.status_code == 413
    with pytest.raises(openai.UnprocessableEntityError, match="best_of"):
        june.chat.completions.create(model=graph.settings.engine_model_name, max_tokens=8, extra_body={"best_of": 2},
                                     messages=[{"role": "user", "content": "hi"}])


def test_requests_over_the_caps_are_refused_before_the_engine(june: openai.OpenAI, graph) -> None:
    for options in ({"max_tokens": 100_000}, {"n": graph.settings.max_completion_choices + 1}):
        with pytest.raises(openai.UnprocessableEntityError, match="at most"):
            june.chat.completions.create(model=graph.settings.engine_model_name, **options,
                                         messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.APIStatusError) as too_long:
        june.chat.completions.create(model="june", messages=[
            {"role": "user", "content": "a" * (graph.settings.max_chat_messages_chars + 1)}])
    assert too_long.value.status_code == 413
