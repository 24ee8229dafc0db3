"""The Discord bot: `python -m bots.discord` (`make discord`); messages and slash commands over the gateway.

In guild channels it answers only messages that mention it or reply to one of its messages (the
mention is taken out of the question), and June answers there without the user's private data.
Direct messages are answered as they come.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import re
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiohttp
import discord
import yarl
from discord import app_commands

from bots import discord_markdown
from bots.access import AccessPolicy
from bots.api_client import JuneClient
from bots.assistant import Activity, AudioTooLarge, Renderer, SendFailed, SendRetry
from bots.commands import DESCRIPTIONS, Caller
from bots.core import BotCore, Incoming
from bots.history import Inbound
from bots.logs import configure_logging
from bots.settings import DiscordSettings
from common.cli_settings import INVALID_SETTINGS, load_settings

PLATFORM = "discord"
NO_MENTIONS = discord.AllowedMentions.none()
MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # Discord's attachment limit without boosts
MENTION_ONLY = "Yes? Write your question after mentioning me, or reply to one of my messages."
log = logging.getLogger("june.bots.discord")

RENDERER = Renderer(discord_markdown.render, lambda markdown: markdown)


def point_at(api_url: str, gateway_url: str) -> None:
    """discord.py's REST base and gateway address (both default to Discord's own)."""
    discord.http.Route.BASE = api_url.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


def _audio_attachment(message: discord.Message) -> discord.Attachment | None:
    for attachment in message.attachments:
        if attachment.is_voice_message() or (attachment.content_type or "").startswith(("audio/", "video/ogg")):
            return attachment
    return None


def _translate(error: Exception) -> Exception:
    """discord.py's errors as the assistant's. discord.py itself already retried 429s and 5xx a few times."""
    if isinstance(error, discord.RateLimited):
        return SendRetry(f"rate limited for {error.retry_after:.1f} s", error.retry_after)
    if isinstance(error, discord.DiscordServerError) or (isinstance(error, discord.HTTPException)
                                                         and error.status == 429):
        return SendRetry(f"HTTP {error.status}")
    if isinstance(error, discord.HTTPException):  # 403 (50013 missing permissions, 50007 DMs closed), 404, 400
        return SendFailed(f"HTTP {error.status} ({error.code}): {error.text}"[:300])
    if isinstance(error, (aiohttp.ClientError, asyncio.TimeoutError, OSError)):
        return SendRetry(type(error).__name__)
    return error


class DiscordTransport:
    """The assistant's view of Discord, through channel IDs only (no cache needed after a restart)."""

    voice_is_file = True  # a bot's "voice note" is an OGG attachment already
    max_file_bytes = MAX_UPLOAD_BYTES

    def __init__(self, client: discord.Client, max_audio_bytes: int):
        self.client = client
        self.max_audio_bytes = max_audio_bytes

    async def fetch_audio(self, inbound: Inbound) -> tuple[bytes, str, str]:
        media = inbound.media or {}
        if (media.get("size") or 0) > self.max_audio_bytes:
            raise AudioTooLarge(f"{media['size']} bytes")
        data = await self.client.http.get_from_cdn(media["url"])
        return data, media.get("filename") or "voice.ogg", media.get("content_type") or "audio/ogg"

    @asynccontextmanager
    async def activity(self, chat_id: str, kind: Activity) -> AsyncIterator[None]:
        async with self.client.get_partial_messageable(int(chat_id)).typing():
            yield

    async def send_text(self, chat_id: str, text: str, parse_mode: str | None, reply_to: str | None) -> str:
        channel = self.client.get_partial_messageable(int(chat_id))
        try:
            sent = await channel.send(text, reference=self._reference(chat_id, reply_to),
                                      allowed_mentions=NO_MENTIONS, suppress_embeds=True)
        except (discord.HTTPException, aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
            raise _translate(error) from None
        return str(sent.id)

    async def send_voice(self, chat_id: str, audio: bytes, reply_to: str | None) -> str:
        return await self.send_file(chat_id, audio, "june.ogg", reply_to)

    async def send_file(self, chat_id: str, data: bytes, filename: str, reply_to: str | None) -> str:
        channel = self.client.get_partial_messageable(int(chat_id))
        try:
            sent = await channel.send(file=discord.File(io.BytesIO(data), filename),
                                      reference=self._reference(chat_id, reply_to), allowed_mentions=NO_MENTIONS)
        except (discord.HTTPException, aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
            raise _translate(error) from None
        return str(sent.id)

    async def edit_text(self, chat_id: str, message_id: str, text: str, parse_mode: str | None) -> None:
        message = self.client.get_partial_messageable(int(chat_id)).get_partial_message(int(message_id))
        try:
            await message.edit(content=text, allowed_mentions=NO_MENTIONS)
        except (discord.HTTPException, aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
            raise _translate(error) from None

    async def forward(self, chat_id: str, message_id: str, owner_id: int) -> tuple[str, str] | None:
        try:
            direct = await (await self.client.fetch_user(owner_id)).create_dm()
            message = self.client.get_partial_messageable(int(chat_id)).get_partial_message(int(message_id))
            copy = await message.forward(direct)
        except (discord.HTTPException, aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
            log.warning("could not forward to an owner", extra={"owner": owner_id, "reason": type(error).__name__})
            return None
        return str(direct.id), str(copy.id)

    @staticmethod
    def _reference(chat_id: str, reply_to: str | None) -> discord.MessageReference | None:
        if not reply_to:
            return None
        return discord.MessageReference(message_id=int(reply_to), channel_id=int(chat_id), fail_if_not_exists=False)


class InteractionTransport(DiscordTransport):
    """Answers a slash command through its interaction (visible only to the user who ran it)."""

    def __init__(self, client: discord.Client, interaction: discord.Interaction):
        super().__init__(client, 0)
        self.interaction = interaction

    async def send_text(self, chat_id: str, text: str, parse_mode: str | None, reply_to: str | None) -> str:
        try:
            if not self.interaction.response.is_done():
                response = await self.interaction.response.send_message(text, ephemeral=True,
                                                                        allowed_mentions=NO_MENTIONS)
                return str(response.message_id or self.interaction.id)
            sent = await self.interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS, wait=True)
        except (discord.HTTPException, aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
            raise _translate(error) from None
        return str(sent.id)

    async def send_file(self, chat_id: str, data: bytes, filename: str, reply_to: str | None) -> str:
        file = discord.File(io.BytesIO(data), filename)
        try:
            if not self.interaction.response.is_done():
                response = await self.interaction.response.send_message(file=file, ephemeral=True)
                return str(response.message_id or self.interaction.id)
            sent = await self.interaction.followup.send(file=file, ephemeral=True, wait=True)
        except (discord.HTTPException, aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
            raise _translate(error) from None
        return str(sent.id)


def addressed_content(message: discord.Message, bot_id: int,
                      is_ours: Callable[[str, str], bool]) -> tuple[bool, str]:
    """Whether a guild message is for the bot (mentions it, or replies to it), and its text without the mention."""
    mentioned = bot_id in message.raw_mentions
    reference = message.reference
    replied = False
    if reference is not None and reference.message_id:
        resolved = reference.resolved
        replied = (isinstance(resolved, discord.Message) and resolved.author.id == bot_id) or \
            is_ours(str(reference.channel_id or message.channel.id), str(reference.message_id))
    content = re.sub(rf"<@!?{bot_id}>[,:;]?", " ", message.content or "")
    return mentioned or replied, " ".join(content.split())


def bot_user_id(token: str) -> str:
    """The bot's user ID, which a Discord token begins with (base64); "" when it does not decode."""
    head = token.split(".")[0]
    try:
        decoded = base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        return ""
    return decoded if decoded.isdigit() else ""


class JuneDiscord(discord.Client):
    def __init__(self, settings: DiscordSettings, june: JuneClient | None = None):
        intents = discord.Intents.default()
        intents.message_content = True
        super().__init__(intents=intents, allowed_mentions=NO_MENTIONS)
        self.settings = settings
        self.access = AccessPolicy(PLATFORM, settings.discord_owners, settings.discord_allowed)
        transport = DiscordTransport(self, settings.max_audio_bytes)
        self.core = BotCore(PLATFORM, settings, transport, RENDERER, settings.discord_owners,
                            bot_user_id(settings.discord_token.get_secret_value()), june)
        self.history, self.assistant = self.core.history, self.core.assistant
        self.tree = app_commands.CommandTree(self)
        self._register_commands()

    def _register_commands(self) -> None:
        for name in ("start", "help", "reset", "status", "export"):
            self.tree.command(name=name, description=DESCRIPTIONS[name])(self._simple_command(name))

        @self.tree.command(name="forget", description=DESCRIPTIONS["forget"])
        @app_commands.describe(what="'me' to ask, then 'me confirm' within 5 minutes to delete")
        @app_commands.choices(what=[app_commands.Choice(name="me", value="me"),
                                    app_commands.Choice(name="me confirm", value="me confirm")])
        async def forget(interaction: discord.Interaction, what: app_commands.Choice[str]) -> None:
            await self.on_command(interaction, "forget", what.value)

        @self.tree.command(name="voice", description=DESCRIPTIONS["voice"])
        @app_commands.choices(state=[app_commands.Choice(name="on", value="on"),
                                     app_commands.Choice(name="off", value="off")])
        async def voice(interaction: discord.Interaction, state: app_commands.Choice[str]) -> None:
            await self.on_command(interaction, "voice", state.value)

    def _simple_command(self, name: str):
        async def command(interaction: discord.Interaction) -> None:
            await self.on_command(interaction, name, "")

        command.__name__ = name
        return command

    async def setup_hook(self) -> None:
        await self.tree.sync()
        self.core.start(self.loop.create_task)

    async def on_ready(self) -> None:
        log.info("discord bot started", extra={"user_id": self.user.id if self.user else None})

    async def close(self) -> None:
        await super().close()
        await self.core.stop()

    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return
        attachment = _audio_attachment(message)
        kind = "voice" if attachment else "text"
        chat_id, user_id = str(message.channel.id), str(message.author.id)
        public = not isinstance(message.channel, discord.DMChannel)
        content = message.content
        if public:  # a guild channel (or one not known to be a DM): only what is addressed to the bot
            if self.user is None:
                return
            addressed, content = addressed_content(message, self.user.id,
                                                   lambda channel, sent: self.history.is_ours(PLATFORM, channel, sent))
            if not addressed:
                return
        role = self.access.admit(message.author.id)
        if role is None:
            self.history.ignore(PLATFORM, kind, chat_id, user_id, str(message.id))
            return
        if not attachment and not content.strip() and not public:
            return
        media = {"url": attachment.url, "filename": attachment.filename, "size": attachment.size,
                 "content_type": attachment.content_type} if attachment else None
        reference = message.reference
        replied = str(reference.message_id) if reference is not None and reference.message_id else None
        incoming = Incoming(kind, chat_id, user_id, str(message.id), None if attachment else content, media, public,
                            replied)
        await self.core.on_message(incoming, role, MENTION_ONLY)

    async def on_command(self, interaction: discord.Interaction, name: str, argument: str) -> None:
        role = self.access.admit(interaction.user.id)
        chat_id, user_id = str(interaction.channel_id), str(interaction.user.id)
        if role is None:
            self.history.ignore(PLATFORM, "command", chat_id, user_id, str(interaction.id))
            return
        direct = interaction.guild_id is None and isinstance(interaction.channel, discord.DMChannel)
        inbound = self.history.receive(PLATFORM, "command", chat_id, user_id, str(interaction.id),
                                       f"/{name} {argument}".strip(), public=not direct)
        if inbound is None:
            return
        if name in ("status", "reset", "export", "forget"):  # these wait for June: answer within Discord's 3 s
            await interaction.response.defer(ephemeral=True, thinking=True)
        await self.core.on_command(inbound, name, argument, Caller(user_id, chat_id, role, direct),
                                   InteractionTransport(self, interaction))

    async def on_error(self, event: str, *args: object, **kwargs: object) -> None:
        error = sys.exc_info()[1]
        log.error("event handler failed", extra={"event": event, "reason": type(error).__name__})


def _secrets(settings: DiscordSettings) -> list[str]:
    """What the log formatter cuts out of every line."""
    return [value.get_secret_value() for value in (settings.discord_token, settings.api_key) if value is not None]


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    if (settings := load_settings(DiscordSettings, "june discord")) is None:
        return INVALID_SETTINGS
    configure_logging(secrets=_secrets(settings))
    point_at(settings.discord_api_url, settings.discord_gateway_url)
    try:
        JuneDiscord(settings).run(settings.discord_token.get_secret_value(), log_handler=None)
    except discord.LoginFailure:
        print("june discord: Discord refused JUNE_DISCORD_TOKEN; check it in the Developer Portal", file=sys.stderr)
        return 2
    except discord.PrivilegedIntentsRequired:
        print("june discord: turn on the Message Content intent for the bot in the Developer Portal",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
