"""The bots' commands, the same on every platform: start, help, voice on|off, reset, status, export, forget.

`/export` and `/forget me` reveal or destroy a user's data, so they work only in a direct chat with
the bot. `/forget me` asks first: it is carried out by `/forget me confirm` within five minutes, and
any other message or command in between cancels it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone

from bots.access import Role
from bots.api_client import JuneApiError, JuneClient, JuneUnavailable
from bots.history import MessageHistory
from bots.preferences import Preferences

log = logging.getLogger("june.bots.commands")

FORGET_WINDOW_S = 300.0
HELP = (
    "I'm June, a voice assistant. Send me a voice message and I'll answer with my voice, "
    "or write to me and I'll write back. In a group, mention me or reply to one of my messages; "
    "there I answer without your notes or past conversations.\n\n"
    "/voice on|off: also speak my answers to your text messages\n"
    "/reset: delete this conversation and start a new one\n"
    "/status: whether I'm healthy, and your settings\n"
    "/export: everything June holds about you, as a JSON file (direct messages only)\n"
    "/forget me: delete everything June holds about you (direct messages only; asks first)\n"
    "/help: this message"
)
DESCRIPTIONS = {
    "start": "Say hello to June",
    "help": "What June can do",
    "voice": "Spoken answers to text messages: on or off",
    "reset": "Delete this conversation and start a new one",
    "status": "June's health and your settings",
    "export": "Get everything June holds about you as a file",
    "forget": "Delete everything June holds about you",
}
DIRECT_ONLY = "For your privacy, /{name} works only in a direct message. Message me directly and send it there."
FORGET_ASK = (
    "This deletes everything June holds about you: all your conversations with June, your notes, "
    "pending actions and preferences, and this bot's records of your messages and settings. "
    "It cannot be undone (use /export first to keep a copy).\n\n"
    "To go ahead, send /forget me confirm within 5 minutes. Anything else cancels."
)
FORGET_USAGE = "To delete everything June holds about you, send /forget me. Nothing was deleted."
FORGET_NOTHING_WAITING = ("There is no deletion waiting to be confirmed (a request lasts 5 minutes). "
                          "Send /forget me to start again. Nothing was deleted.")
FORGET_FAILED = "I couldn't reach June to delete your data, so nothing was deleted. Please try /forget me again later."
EXPORT_FAILED = "I couldn't reach June to collect your data. Please try /export again in a minute."
RESET_FAILED = "I couldn't delete this conversation just now, so nothing changed. Please try /reset again in a minute."
CANCELLED = "(Your /forget me request is cancelled; nothing was deleted.)\n\n"


@dataclass(frozen=True)
class Caller:
    """Who ran a command, and where: `direct` is a one-to-one chat with the bot."""

    user_id: str
    chat_id: str
    role: Role
    direct: bool


@dataclass(frozen=True)
class Answer:
    """A command's answer: text, optionally a file, and whether the bot's records of the caller go after it."""

    text: str
    file: tuple[str, bytes] | None = None  # file name, contents
    forget: bool = False


class Commands:
    def __init__(self, platform: str, client: JuneClient, preferences: Preferences, history: MessageHistory):
        self.platform = platform
        self.client = client
        self.preferences = preferences
        self.history = history

    async def run(self, name: str, argument: str, caller: Caller) -> Answer:
        """One command by name (`/name@bot` already stripped); unknown names get the help."""
        name = name.lower()
        cancelled = name != "forget" and self.preferences.cancel_forget(self.platform, caller.user_id)
        if name == "voice":
            answer = Answer(self.voice(caller.user_id, argument))
        elif name == "reset":
            answer = Answer(await self.reset(caller))
        elif name == "status":
            answer = Answer(await self.status(caller.user_id, caller.chat_id, caller.role))
        elif name == "export":
            answer = await self.export(caller)
        elif name == "forget":
            answer = await self.forget(caller, argument)
        elif name == "start":
            answer = Answer(self.start())
        else:
            answer = Answer(self.help())
        return Answer(CANCELLED + answer.text, answer.file, answer.forget) if cancelled else answer

    def start(self) -> str:
        return "Hello! " + HELP

    def help(self) -> str:
        return HELP

    def voice(self, user_id: str, argument: str) -> str:
        choice = argument.strip().lower()
        if choice not in ("on", "off"):
            state = "on" if self.preferences.voice_replies(self.platform, user_id) else "off"
            return f"Voice replies are {state}. Use /voice on or /voice off."
        self.preferences.set_voice_replies(self.platform, user_id, choice == "on")
        return f"Voice replies are now {choice}."

    async def reset(self, caller: Caller) -> str:
        """Delete the caller's turns of this chat's conversation in June, then start a new conversation."""
        conversation = self.preferences.conversation_id(self.platform, caller.chat_id)
        try:
            deleted = await self.client.delete_conversation(conversation, user_id=self._june_user(caller))
        except (JuneApiError, JuneUnavailable) as error:
            self._log_refusal("delete a conversation", error)
            return RESET_FAILED
        self.preferences.reset(self.platform, caller.chat_id)
        return (f"Done: I've forgotten this conversation ({_count(deleted, 'message')} deleted) and started "
                "a new one. What shall we talk about?")

    async def status(self, user_id: str, chat_id: str, role: Role) -> str:
        health = await self.client.health()
        stages = ", ".join(f"{name} {state}" for name, state in sorted(health.deployments.items())) or "unreachable"
        voice = "on" if self.preferences.voice_replies(self.platform, user_id) else "off"
        return (f"June: {'healthy' if health.ok else 'not healthy'} ({stages})\n"
                f"You: {role.value}, voice replies {voice}\n"
                f"Conversation: {self.preferences.conversation_id(self.platform, chat_id)}")

    def _log_refusal(self, action: str, error: Exception) -> None:
        log.warning(f"could not {action}", extra={"platform": self.platform, "reason": type(error).__name__,
                                                   "status": getattr(error, "status", None)})

    async def export(self, caller: Caller) -> Answer:
        if not caller.direct:
            return Answer(DIRECT_ONLY.format(name="export"))
        try:
            june = await self.client.export_user(self._june_user(caller))
        except (JuneApiError, JuneUnavailable) as error:
            self._log_refusal("export a user's data", error)
            return Answer(EXPORT_FAILED)
        export = {
            "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "platform": self.platform,
            "user_id": caller.user_id,
            "june": june,
            "bot": {"messages": self.history.export_user(self.platform, caller.user_id),
                    "preferences": self.preferences.export_user(self.platform, caller.user_id)},
        }
        data = json.dumps(export, ensure_ascii=False, indent=2).encode()
        name = f"june-export-{self.platform}-{caller.user_id}.json"
        return Answer("Here is everything June holds about you, as JSON.", file=(name, data))

    async def forget(self, caller: Caller, argument: str) -> Answer:
        if not caller.direct:
            return Answer(DIRECT_ONLY.format(name="forget me"))
        words = argument.lower().split()
        if words == ["me"]:
            self.preferences.request_forget(self.platform, caller.user_id)
            return Answer(FORGET_ASK)
        if words != ["me", "confirm"]:
            cancelled = self.preferences.cancel_forget(self.platform, caller.user_id)
            return Answer((CANCELLED if cancelled else "") + FORGET_USAGE)
        if not self.preferences.take_forget_request(self.platform, caller.user_id, FORGET_WINDOW_S):
            return Answer(FORGET_NOTHING_WAITING)
        try:
            deleted = await self.client.delete_user(self._june_user(caller))
        except (JuneApiError, JuneUnavailable) as error:
            self._log_refusal("delete a user's data", error)
            return Answer(FORGET_FAILED)
        self.preferences.forget_user(self.platform, caller.user_id, caller.chat_id)
        log.info("deleted everything about a user", extra={"platform": self.platform, "deleted": deleted})
        counts = ", ".join(_count(n, kind.rstrip("s").replace("_", " ")) for kind, n in deleted.items()) or "nothing"
        return Answer(f"Done: June deleted everything it held about you ({counts}), and this bot deleted its "
                      "records of your messages and settings. If you write again, we start from scratch.",
                      forget=True)

    def _june_user(self, caller: Caller) -> str:
        return f"{self.platform}:{caller.user_id}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
