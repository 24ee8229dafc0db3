"""What every tool is: a name, a JSON schema for its arguments, and a function of (arguments, context)."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import jsonschema


class ToolError(Exception):
    """A tool could not do what was asked; the message is shown to the model and in the trace."""


class ConfirmationNeeded(Exception):
    """The tool will act only after the user says yes; `question` is June's whole answer for this turn."""

    def __init__(self, question: str):
        super().__init__(question)
        self.question = question


class ChangeDeferred(Exception):
    """A preemptive request (`ToolContext.preemptive`) reached a tool that changes something: it is not run, and the
    reply stops here, since the user may still be talking. Not a ToolError: the model must not answer around it."""

    def __init__(self, tool: str):
        super().__init__(f"{tool} changes what June keeps; it runs only once the user's turn is final")
        self.tool = tool


class NothingFound(str):
    """A result saying there is nothing to report ("You have no saved notes."): June says it as it stands.
    Given nothing, a small model fills the gap from the conversation, with a note the user deleted or a guess."""


@dataclass(frozen=True)
class ToolContext:
    """Who is asking. Tools that touch stored data only ever see this user's."""

    user_id: str
    conversation_id: str | None = None
    timezone: str = "UTC"  # the user's own, or June's default
    private: bool = True  # False where others read the answer (a group chat): no private tools or notes
    chat_id: str | None = None  # the platform chat the request came from: where a reminder is delivered
    preemptive: bool = False  # asked before the user's turn ended: no tool that changes something may run
    # Set when the request is gone (a barge-in, a client that left, the time budget): a long tool stops its work.
    cancelled: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)

    @property
    def platform(self) -> str:
        """The user's namespace ("telegram" for "telegram:42"); "api" for a client's own users."""
        return self.user_id.split(":", 1)[0] if ":" in self.user_id else "api"


@dataclass(frozen=True)
class Recognised:
    """What a tool's pattern found in a request: why it serves the request, and the arguments of each call of the
    tool that answers it (the time in two places is two calls)."""

    reason: str
    calls: tuple[dict[str, Any], ...]
    # The part of the request the calls answer, where the pattern knows it: only words outside it can ask for a
    # second step. None: the whole request.
    covers: tuple[int, int] | None = None

    def rest_of(self, text: str) -> str:
        return text if self.covers is None else text[:self.covers[0]] + " " + text[self.covers[1]:]


@dataclass(frozen=True)
class Rule:
    """A tool's exact pattern: a request it recognises is answered by its calls alone, with no model (the `rules`
    route). A `command` ("remember that…", "cancel my timer") is tried on the request as said; a `quantity` (units,
    dates, the time, arithmetic) only on a request of one step, with its spoken numbers in digits, since a second
    step ("then double it") needs the model. Commands come first, each kind by `rank`, and the first that
    recognises the request wins (`agent.intents.detect`)."""

    recognise: Callable[[str], Recognised | None]
    kind: Literal["command", "quantity"]
    rank: int


@dataclass(frozen=True)
class Tool:
    """A tool is offered to the model only for requests its `signals` match (see `agent.router.select_tools`);
    its `rule` answers the requests it covers whole without a model; `say` words its result as an answer where no
    model words it."""

    name: str
    description: str
    parameters: dict[str, Any]
    run: Callable[[dict[str, Any], ToolContext], str]
    private: bool = False  # reads or reveals the user's own data (notes, history, program output)
    runs_code: bool = False  # slow and heavy: runs in the code pool
    changes_state: bool = False  # writes what June keeps (notes, reminders, settings, a question back): a side effect
    signals: re.Pattern[str] | None = field(default=None, compare=False)
    rule: Rule | None = field(default=None, compare=False)
    say: Callable[[dict[str, Any], str], str] | None = field(default=None, compare=False)
    answers_questions: bool = False  # computes an answer (arithmetic, units, the clock): a statement asks for none
    # The words of a result that an answer must hold as they stand (a program's one-line output), or None.
    quote: Callable[[str], str | None] | None = field(default=None, compare=False)

    def spoken_result(self, arguments: dict[str, Any], result: str) -> str:
        """The result as a sentence of an answer."""
        text = self.say(arguments, result) if self.say else result
        return text if text.endswith((".", "!", "?")) else text + "."

    def quoted(self, result: str) -> str | None:
        return self.quote(result) if self.quote else None

    def validate(self, arguments: Any) -> dict[str, Any]:
        """The arguments if they satisfy the schema; a ToolError naming the problem otherwise."""
        if not isinstance(arguments, dict):
            raise ToolError(f"{self.name} takes a JSON object of arguments, not {type(arguments).__name__}")
        try:
            jsonschema.validate(arguments, self.parameters)
        except jsonschema.ValidationError as error:
            where = ".".join(map(str, error.absolute_path)) or "arguments"
            raise ToolError(f"{self.name}: {where}: {error.message}") from None
        return arguments

    def openai_schema(self) -> dict[str, Any]:
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}


def accepts(read: Callable[[str], Any], text: str) -> bool:
    """Whether a tool's reader takes `text` (a unit, a zone) without a ToolError: a pattern's words are only a
    match when the tool knows what they name."""
    try:
        read(text)
        return True
    except ToolError:
        return False


def object_schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
