"""The bots' commands, the same on every platform: start, help, voice on|off, reset, status."""

from __future__ import annotations

from bots.access import Role
from bots.api_client import JuneClient
from bots.preferences import Preferences

HELP = (
    "I'm June, a voice assistant. Send me a voice message and I'll answer with my voice, "
    "or write to me and I'll write back.\n\n"
    "/voice on|off: also speak my answers to your text messages\n"
    "/reset: forget this conversation and start a new one\n"
    "/status: whether I'm healthy, and your settings\n"
    "/help: this message"
)
DESCRIPTIONS = {
    "start": "Say hello to June",
    "help": "What June can do",
    "voice": "Spoken answers to text messages: on or off",
    "reset": "Forget this conversation",
    "status": "June's health and your settings",
}


class Commands:
    def __init__(self, platform: str, client: JuneClient, preferences: Preferences):
        self.platform = platform
        self.client = client
        self.preferences = preferences

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

    def reset(self, chat_id: str) -> str:
        self.preferences.reset(self.platform, chat_id)
        return "Done: I've forgotten this conversation. What shall we talk about?"

    async def status(self, user_id: str, chat_id: str, role: Role) -> str:
        health = await self.client.health()
        stages = ", ".join(f"{name} {state}" for name, state in sorted(health.deployments.items())) or "unreachable"
        voice = "on" if self.preferences.voice_replies(self.platform, user_id) else "off"
        return (f"June: {'healthy' if health.ok else 'not healthy'} ({stages})\n"
                f"You: {role.value}, voice replies {voice}\n"
                f"Conversation: {self.preferences.conversation_id(self.platform, chat_id)}")
