"""Plans: ordered steps, each a tool with arguments, with dependencies between steps."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from agent.tools.base import Tool, ToolError
from agent.toolcalls import MalformedJson, extract_json, parse_arguments

_REFERENCE = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e-?\d+)?")
MAX_STEPS = 8


class InvalidPlan(ValueError):
    """The model's plan cannot be run; the message is shown to the model on the retry."""


@dataclass(frozen=True)
class Step:
    id: str
    tool: str
    arguments: dict[str, Any]
    depends_on: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]
    source: str  # "rules", "model" or "model-retry"
    thoughts: tuple[str, ...] = field(default=())


def parse_plan(text: str, tools: dict[str, Tool], source: str) -> Plan:
    """A validated plan from the model's JSON: {"thoughts": "...", "steps": [{"id", "tool", "arguments", "depends_on"}]}.

    A bare list of steps, or a single {"tool"/"name", "arguments"} call, is accepted too.
    """
    try:
        value = extract_json(text)
    except MalformedJson as error:
        raise InvalidPlan(str(error)) from None
    thoughts: tuple[str, ...] = ()
    if isinstance(value, dict) and "steps" in value:
        thought = value.get("thoughts") or value.get("thought")
        thoughts = (str(thought),) if thought else ()
        value = value["steps"]
    if isinstance(value, dict):
        value = [value]
    if isinstance(value, list) and not value:
        return Plan((), source, thoughts)
    if not isinstance(value, list):
        raise InvalidPlan("the plan must be a list of steps")
    steps = [_parse_step(raw, index, tools) for index, raw in enumerate(value[:MAX_STEPS], 1)]
    ids = {step.id for step in steps}
    for step in steps:
        unknown = [d for d in step.depends_on if d not in ids or d == step.id]
        if unknown:
            raise InvalidPlan(f"step {step.id} depends on unknown steps {unknown}")
    _check_acyclic(steps)
    return Plan(tuple(steps), source, thoughts)


def _parse_step(raw: Any, index: int, tools: dict[str, Tool]) -> Step:
    if not isinstance(raw, dict):
        raise InvalidPlan(f"step {index} is not an object")
    function = raw.get("function")
    name = raw.get("tool") or raw.get("name") or (function.get("name") if isinstance(function, dict) else function)
    if not isinstance(name, str) or name not in tools:
        raise InvalidPlan(f"step {index} uses unknown tool {name!r}; tools are {', '.join(sorted(tools))}")
    try:
        arguments = parse_arguments(raw.get("arguments", raw.get("args", {})) or {})
    except MalformedJson as error:
        raise InvalidPlan(f"step {index}: {error}") from None
    references = {m for value in arguments.values() if isinstance(value, str) for m in _REFERENCE.findall(value)}
    if not references:
        try:
            tools[name].validate(arguments)
        except ToolError as error:
            raise InvalidPlan(str(error)) from None
    depends = raw.get("depends_on") or []
    depends = [depends] if isinstance(depends, str | int) else depends
    step_id = str(raw.get("id", f"s{index}"))
    # A step listed as its own dependency says nothing; small models write it often.
    depends_on = [d for d in dict.fromkeys([*map(str, depends), *sorted(references)]) if d != step_id]
    return Step(step_id, name, arguments, tuple(depends_on))


def _check_acyclic(steps: list[Step]) -> None:
    remaining = {step.id: set(step.depends_on) for step in steps}
    while remaining:
        ready = [sid for sid, deps in remaining.items() if not deps & remaining.keys()]
        if not ready:
            raise InvalidPlan(f"the steps {sorted(remaining)} depend on each other in a cycle")
        for sid in ready:
            del remaining[sid]


def resolve_references(arguments: dict[str, Any], results: dict[str, str]) -> dict[str, Any]:
    """Replace {{step_id}} in string arguments by that step's result (its first number, if it has one); an
    argument that is only a reference to a number becomes that number."""

    def value_of(match: re.Match[str]) -> str:
        result = results[match[1]]
        number = _NUMBER.search(result)
        return number[0] if number else result

    def resolved(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        text = _REFERENCE.sub(value_of, value)
        if _REFERENCE.fullmatch(value.strip()) and _NUMBER.fullmatch(text):
            return float(text)
        return text

    return {key: resolved(value) for key, value in arguments.items()}


def plan_schema(tools: dict[str, Tool], max_steps: int = 4) -> dict[str, Any]:
    """The JSON schema of a plan, for the engine's structured outputs: a plan the model writes to it names only
    known tools with arguments of the right shape, numbers its steps s1, s2, … in order, and lets a step depend
    on (or take a number from, as a {{step}} reference) only the steps before it."""

    def step(tool: Tool, index: int) -> dict[str, Any]:
        earlier = [f"s{n}" for n in range(1, index)]
        reference = {"type": "string", "enum": [f"{{{{{name}}}}}" for name in earlier]}
        properties = {name: {"anyOf": [spec, reference]} if spec.get("type") == "number" and earlier else spec
                      for name, spec in tool.parameters["properties"].items()}
        arguments = {**tool.parameters, "properties": properties}
        depends_on = {"type": "array", "items": {"enum": earlier}} if earlier else {"type": "array", "maxItems": 0}
        return {"type": "object", "additionalProperties": False, "required": ["id", "tool", "arguments"],
                "properties": {"id": {"const": f"s{index}"}, "tool": {"const": tool.name}, "arguments": arguments,
                               "depends_on": depends_on}}

    positions = [{"anyOf": [step(tool, index) for tool in tools.values()]} for index in range(1, max_steps + 1)]
    return {"type": "object", "additionalProperties": False, "required": ["thoughts", "steps"],
            "properties": {"thoughts": {"type": "string", "maxLength": 200},
                           "steps": {"type": "array", "prefixItems": positions, "items": False}}}
