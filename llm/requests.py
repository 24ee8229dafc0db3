"""An OpenAI chat body, as June's callers send it, made into one llama-server honours — or refused.

Every field is passed on, mapped to llama.cpp's name for it, or refused with a 422 that names it: nothing a caller
asks for is dropped in silence. JSON-schema output (`response_format` json_schema, or vLLM's
`structured_outputs.json`) becomes a compact GBNF grammar, so small models cannot spend their tokens on whitespace.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

PASSED = frozenset({
    "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature", "top_p",
    "top_k", "min_p", "stop", "seed", "presence_penalty", "frequency_penalty", "logit_bias", "logprobs",
    "top_logprobs", "tools", "tool_choice", "parallel_tool_calls", "ignore_eos", "user",
})
RENAMED = {"repetition_penalty": "repeat_penalty"}
JsonGrammar = Callable[[str], str]  # a JSON schema's text → a GBNF grammar


class UnsupportedRequest(ValueError):
    """A body llama-server cannot honour as asked (a 422 for the caller)."""


def llama_body(body: dict[str, Any], json_grammar: JsonGrammar) -> dict[str, Any]:
    """The body for llama-server's `/v1/chat/completions`; UnsupportedRequest names what cannot be honoured."""
    _check_messages(body.get("messages"))
    out: dict[str, Any] = {}
    for name, value in body.items():
        if value is None:
            continue
        if name in PASSED:
            out[name] = value
        elif name in RENAMED:
            out[RENAMED[name]] = value
        elif name == "n":
            if value != 1:
                raise UnsupportedRequest("n: the llama.cpp engine writes one choice per request (n must be 1)")
        elif name not in ("response_format", "structured_outputs"):
            raise UnsupportedRequest(f"{name}: not supported by the llama.cpp engine")
    schema = _json_schema(body)
    if (call := _forced_call(body)) is not None:
        if schema is not None:
            raise UnsupportedRequest("tool_choice: a forced tool call and a JSON schema for the reply exclude each other")
        # llama-server leaves a forced call to a template-specific grammar, which the Qwen Coder template lacks:
        # the call is forced here, as one bare JSON call, which llm.tool_text makes into `tool_calls`.
        schema, out["tool_choice"] = call, "none"
    if schema is not None:
        out["grammar"] = json_grammar(json.dumps(schema))
    elif body.get("response_format") is not None:
        out["response_format"] = body["response_format"]
    return out


def _forced_call(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema of one call of an offered tool, when `tool_choice` forces a call ("required", or a named
    function); None otherwise."""
    choice = body.get("tool_choice")
    if choice in (None, "auto", "none"):
        return None
    functions = [tool.get("function") or {} for tool in body.get("tools") or [] if isinstance(tool, dict)]
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        functions = [function for function in functions if function.get("name") == name]
    elif choice != "required":
        raise UnsupportedRequest("tool_choice: one of none, auto, required, or {'type': 'function', ...}")
    if not functions:
        raise UnsupportedRequest("tool_choice: it forces a call of a tool the request does not offer")
    return {"anyOf": [{"type": "object", "additionalProperties": False, "required": ["name", "arguments"],
                       "properties": {"name": {"const": function.get("name")},
                                      "arguments": function.get("parameters") or {"type": "object"}}}
                      for function in functions]}


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise UnsupportedRequest("messages: a non-empty list of chat messages is required")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise UnsupportedRequest(f"messages[{index}]: a message is an object with a 'role' and its 'content'")


def _json_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema the reply must follow, from either way of asking for one."""
    structured = body.get("structured_outputs")
    if structured is not None:
        if not isinstance(structured, dict) or set(structured) - {"json"} or not isinstance(
                structured.get("json"), dict):
            raise UnsupportedRequest("structured_outputs: the llama.cpp engine takes only {'json': <a JSON schema>}")
        return structured["json"]
    response_format = body.get("response_format")
    if response_format is None:
        return None
    if not isinstance(response_format, dict) or response_format.get("type") not in ("text", "json_object",
                                                                                     "json_schema"):
        raise UnsupportedRequest("response_format: type is one of text, json_object, json_schema")
    if response_format["type"] != "json_schema":
        return None
    schema = (response_format.get("json_schema") or {}).get("schema")
    if not isinstance(schema, dict):
        raise UnsupportedRequest("response_format.json_schema.schema: a JSON schema object is required")
    return schema
