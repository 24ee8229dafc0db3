"""The Telegram bot: `python -m bots.telegram` (`make telegram`); polling, or a webhook when configured.

In groups, supergroups and channels it answers only messages that mention it (`@botname`) or reply
to one of its messages, and commands addressed to it; June then answers without the user's private
data. A webhook always has a secret token: `JUNE_TELEGRAM_WEBHOOK_SECRET`, or a random one per start.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
import secrets
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from telegram import BotCommand, Message, MessageEntity, ReplyParameters, Update
from telegram.constants import ChatAction, ChatType
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder, CommandHandler, ContextTypes, filters
from telegram.ext import MessageHandler as OnMessage

from bots import telegram_html
from bots.access import AccessPolicy, Role
from bots.api_client import JuneClient
from bots.assistant import Activity, AudioTooLarge, MarkupRejected, Renderer, SendFailed, SendRetry
from bots.commands import DESCRIPTIONS, Caller
from bots.core import BotCore, Incoming
from bots.history import Inbound
from bots.logs import configure_logging
from bots.settings import TelegramSettings
from common.cli_settings import INVALID_SETTINGS, load_settings

PLATFORM = "telegram"
ACTIVITY_REFRESH_S = 4.0  # Telegram shows a chat action for about 5 s
AUDIO_FILTER = filters.VOICE | filters.AUDIO | filters.Document.AUDIO
MAX_UPLOAD_BYTES = 50 * 1024 * 1024  # the Bot API's limit on files a bot sends
MENTION_ONLY = "Yes? Write your question after mentioning me, or reply to one of my messages."
log = logging.getLogger("june.bots.telegram")


def to_plain(markup: str) -> str:
    return html.unescape(re.sub(r"<[^<>]*>", "", markup))


RENDERER = Renderer(telegram_html.render, to_plain)


class TelegramTransport:
    """The assistant's view of Telegram, through python-telegram-bot's `Bot`."""

    voice_is_file = False
    max_file_bytes = MAX_UPLOAD_BYTES

    def __init__(self, application: Application, max_audio_bytes: int):
        self.application = application
        self.max_audio_bytes = max_audio_bytes

    async def fetch_audio(self, inbound: Inbound) -> tuple[bytes, str, str]:
        media = inbound.media or {}
        if (media.get("file_size") or 0) > self.max_audio_bytes:
            raise AudioTooLarge(f"{media['file_size']} bytes")
        try:
            file = await self.application.bot.get_file(media["file_id"])
        except BadRequest as error:
            if "too big" in error.message.lower():
                raise AudioTooLarge("over the Bot API download limit") from None
            raise
        data = bytes(await file.download_as_bytearray())
        if len(data) > self.max_audio_bytes:
            raise AudioTooLarge(f"{len(data)} bytes")
        return data, media.get("file_name") or "voice.ogg", media.get("mime_type") or "audio/ogg"

    @asynccontextmanager
    async def activity(self, chat_id: str, kind: Activity) -> AsyncIterator[None]:
        action = ChatAction.RECORD_VOICE if kind == "recording" else ChatAction.TYPING

        async def keep_showing() -> None:
            while True:
                try:
                    await self.application.bot.send_chat_action(int(chat_id), action)
                except NetworkError:
                    pass  # only a courtesy
                await asyncio.sleep(ACTIVITY_REFRESH_S)

        task = asyncio.create_task(keep_showing())
        try:
            yield
        finally:
            task.cancel()

    async def send_text(self, chat_id: str, text: str, parse_mode: str | None, reply_to: str | None) -> str:
        try:
            sent = await self.application.bot.send_message(int(chat_id), text, parse_mode=parse_mode,
                                                           reply_parameters=_reply_to(reply_to))
        except BadRequest as error:
            if parse_mode and "parse entities" in error.message.lower():
                raise MarkupRejected(error.message) from None
            raise _translate(error) from None
        except TelegramError as error:
            raise _translate(error) from None
        return str(sent.message_id)

    async def send_voice(self, chat_id: str, audio: bytes, reply_to: str | None) -> str:
        try:
            sent = await self.application.bot.send_voice(int(chat_id), audio, filename="june.ogg",
                                                         reply_parameters=_reply_to(reply_to))
        except TelegramError as error:
            raise _translate(error) from None
        return str(sent.message_id)

    async def edit_text(self, chat_id: str, message_id: str, text: str, parse_mode: str | None) -> None:
        try:
            await self.application.bot.edit_message_text(text, chat_id=int(chat_id), message_id=int(message_id),
                                                         parse_mode=parse_mode)
        except BadRequest as error:
            if "not modified" in error.message.lower():
                return
            if parse_mode and "parse entities" in error.message.lower():
                raise MarkupRejected(error.message) from None
            raise _translate(error) from None
        except TelegramError as error:
            raise _translate(error) from None

    async def forward(self, chat_id: str, message_id: str, owner_id: int) -> tuple[str, str] | None:
        try:
            copy = await self.application.bot.forward_message(owner_id, int(chat_id), int(message_id))
        except TelegramError as error:
            log.warning("could not forward to an owner", extra={"owner": owner_id, "reason": type(error).__name__})
            return None
        return str(owner_id), str(copy.message_id)

    async def send_file(self, chat_id: str, data: bytes, filename: str, reply_to: str | None) -> str:
        """Audio as an audio file (voice notes may be refused by a user's privacy settings), the rest as a document."""
        bot = self.application.bot
        try:
            if filename.endswith(".ogg"):
                sent = await bot.send_audio(int(chat_id), data, filename=filename, title="June",
                                            reply_parameters=_reply_to(reply_to))
            else:
                sent = await bot.send_document(int(chat_id), data, filename=filename,
                                               reply_parameters=_reply_to(reply_to))
        except TelegramError as error:
            raise _translate(error) from None
        return str(sent.message_id)


def _translate(error: TelegramError) -> Exception:
    """Telegram's errors as the assistant's: rate limits, timeouts and network errors pass; refusals stay."""
    if isinstance(error, InvalidToken):
        return error
    if isinstance(error, RetryAfter):
        wait = error.retry_after
        return SendRetry(f"RetryAfter: {error.message}",
                         wait.total_seconds() if isinstance(wait, timedelta) else float(wait))
    if isinstance(error, (Forbidden, BadRequest)):
        return SendFailed(f"{type(error).__name__}: {error.message}")
    if isinstance(error, NetworkError):  # timeouts, connection errors, Telegram's 5xx
        return SendRetry(f"{type(error).__name__}: {error.message}")
    return SendFailed(f"{type(error).__name__}: {error.message}")


def _reply_to(message_id: str | None) -> ReplyParameters | None:
    return ReplyParameters(int(message_id), allow_sending_without_reply=True) if message_id else None


def addressed_text(message: Message, bot_id: int, username: str | None) -> tuple[bool, str]:
    """Whether a group message is for the bot (mentions it, or replies to it), and its text without the mention."""
    replied = message.reply_to_message
    to_bot = bool(replied and replied.from_user and replied.from_user.id == bot_id)
    text = message.text or message.caption or ""
    entities = message.entities or message.caption_entities or ()
    handle = f"@{username}".lower() if username else None
    spans = []
    for entity in entities:
        if entity.type == MessageEntity.MENTION:
            mentioned = handle is not None and _utf16_slice(text, entity.offset, entity.length).lower() == handle
        elif entity.type == MessageEntity.TEXT_MENTION:
            mentioned = entity.user is not None and entity.user.id == bot_id
        else:
            continue
        if mentioned:
            spans.append((entity.offset, entity.length))
    encoded = text.encode("utf-16-le")
    for offset, length in sorted(spans, reverse=True):  # each mention becomes a NUL, then goes with its comma
        encoded = encoded[: 2 * offset] + "\0".encode("utf-16-le") + encoded[2 * (offset + length):]
    without = re.sub(r"\0[,:;]?", " ", encoded.decode("utf-16-le", errors="ignore").replace("\0\0", "\0"))
    return to_bot or bool(spans), " ".join(without.split())


def _utf16_slice(text: str, offset: int, length: int) -> str:
    """Telegram's entity offsets count UTF-16 code units."""
    return text.encode("utf-16-le")[2 * offset: 2 * (offset + length)].decode("utf-16-le", errors="ignore")


def _media(message: Message) -> dict:
    audio = message.voice or message.audio or message.document
    return {"file_id": audio.file_id, "file_size": audio.file_size, "mime_type": getattr(audio, "mime_type", None),
            "file_name": getattr(audio, "file_name", None)}


class TelegramBot:
    """The bot core behind python-telegram-bot's handlers: this class only reads Telegram's updates."""

    def __init__(self, settings: TelegramSettings, application: Application, client: JuneClient | None = None):
        self.settings = settings
        self.application = application
        self.access = AccessPolicy(PLATFORM, settings.telegram_owners, settings.telegram_allowed)
        self.transport = TelegramTransport(application, settings.max_audio_bytes)
        bot_id = settings.telegram_token.get_secret_value().split(":")[0]  # the token's public half
        self.core = BotCore(PLATFORM, settings, self.transport, RENDERER, settings.telegram_owners, bot_id, client)
        self.history, self.assistant = self.core.history, self.core.assistant

        application.add_handler(OnMessage(AUDIO_FILTER, self.on_message))
        application.add_handler(OnMessage(filters.TEXT & ~filters.COMMAND, self.on_message))
        application.add_handler(CommandHandler(list(DESCRIPTIONS), self.on_command))
        application.add_error_handler(self.on_error)
        application.post_init = self.post_init
        application.post_shutdown = self.post_shutdown

    async def post_init(self, application: Application) -> None:
        await application.bot.set_my_commands([BotCommand(name, text) for name, text in DESCRIPTIONS.items()])
        leftovers = self.core.start(asyncio.create_task)  # the core awaits them at shutdown itself
        log.info("telegram bot started", extra={"username": application.bot.username, "leftovers": leftovers})

    async def post_shutdown(self, application: Application) -> None:
        await self.core.stop()

    def _admit(self, update: Update, kind: str) -> tuple[Role, Message] | None:
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return None
        role = self.access.admit(user.id)
        if role is None:
            self.history.ignore(PLATFORM, kind, str(message.chat_id), str(user.id), str(message.message_id))
            return None
        return role, message

    async def on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None:
            return
        voice = bool(AUDIO_FILTER.check_update(update))
        public = message.chat.type != ChatType.PRIVATE
        text = message.text
        if public:  # in a group: only what is addressed to the bot, and the mention is not part of the question
            bot = self.application.bot
            addressed, text = addressed_text(message, bot.id, bot.username)
            if not addressed:
                return
        admitted = self._admit(update, "voice" if voice else "text")
        if admitted is None:
            return
        role, message = admitted
        replied = message.reply_to_message
        incoming = Incoming("voice" if voice else "text", str(message.chat_id), str(message.from_user.id),
                            str(message.message_id), None if voice else text, _media(message) if voice else None,
                            public, str(replied.message_id) if replied else None)
        await self.core.on_message(incoming, role, MENTION_ONLY)

    async def on_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        admitted = self._admit(update, "command")
        if admitted is None:
            return
        role, message = admitted
        chat_id, user_id = str(message.chat_id), str(message.from_user.id)
        public = message.chat.type != ChatType.PRIVATE
        inbound = self.history.receive(PLATFORM, "command", chat_id, user_id, str(message.message_id), message.text,
                                       public=public)
        if inbound is None:
            return
        name = (message.text or "/help").split()[0][1:].split("@")[0].lower()
        argument = " ".join(context.args or [])
        async with self.core.chat_locks[chat_id]:
            await self.core.on_command(inbound, name, argument, Caller(user_id, chat_id, role, direct=not public))

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        error = context.error
        log.error("handler failed", extra={"reason": type(error).__name__,
                                           "update_id": getattr(update, "update_id", None)})


def build_application(settings: TelegramSettings, client: JuneClient | None = None) -> tuple[Application, TelegramBot]:
    application = (
        ApplicationBuilder()
        .token(settings.telegram_token.get_secret_value())
        .base_url(settings.telegram_api_url)
        .base_file_url(settings.telegram_file_url)
        .local_mode(settings.telegram_local_mode)
        .rate_limiter(AIORateLimiter(max_retries=3))
        .concurrent_updates(True)
        .build()
    )
    return application, TelegramBot(settings, application, client)


def webhook_options(settings: TelegramSettings) -> dict:
    """`run_webhook`'s arguments. The secret token is never optional: without one, anyone who finds the URL
    could post updates as any user, so an unset `JUNE_TELEGRAM_WEBHOOK_SECRET` gets a random one per start
    (Telegram learns it from setWebhook; updates without it are refused with 403)."""
    if settings.telegram_webhook_secret:
        secret = settings.telegram_webhook_secret.get_secret_value()
    else:
        secret = secrets.token_urlsafe(32)
        log.info("JUNE_TELEGRAM_WEBHOOK_SECRET is not set: using a random webhook secret for this run")
    path = re.sub(r"^https?://[^/]+/?", "", settings.telegram_webhook_url or "")
    return dict(listen=settings.telegram_webhook_listen, port=settings.telegram_webhook_port, url_path=path,
                webhook_url=settings.telegram_webhook_url, secret_token=secret, allowed_updates=Update.ALL_TYPES)


def run(settings: TelegramSettings) -> None:
    application, _ = build_application(settings)
    if settings.telegram_webhook_url:
        application.run_webhook(**webhook_options(settings))
    else:
        application.run_polling(allowed_updates=Update.ALL_TYPES, timeout=settings.telegram_poll_timeout_s)


def _secrets(settings: TelegramSettings) -> list[str]:
    """What the log formatter cuts out of every line."""
    values = [settings.telegram_token, settings.api_key, settings.telegram_webhook_secret]
    return [value.get_secret_value() for value in values if value is not None]


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    if (settings := load_settings(TelegramSettings, "june telegram")) is None:
        return INVALID_SETTINGS
    configure_logging(secrets=_secrets(settings))
    try:
        run(settings)
    except InvalidToken:
        print("june telegram: Telegram refused JUNE_TELEGRAM_TOKEN; check it with @BotFather", file=sys.stderr)
        return 2
    except NetworkError as error:
        print(f"june telegram: cannot reach the Telegram Bot API at JUNE_TELEGRAM_API_URL ({type(error).__name__})",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
