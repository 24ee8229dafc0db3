"""The routes of June speaking first: the bots' outbox and records, the Message API and the owner's inbox.

The Message API and the inbox are the owner's (an admin key); a bot's key reaches only its own users'
deliveries and records, and may pass on the owner's answer to an inbox item of its users.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from ray.serve.handle import DeploymentHandle

from api.callers import Caller, CurrentCaller, acting_for
from api.errors import ApiError, bad_request, not_found
from api.schemas import (
    ID_PATTERN,
    PLATFORM_PATTERN,
    Acknowledgement,
    AmendMessage,
    Delivery,
    DeliveryList,
    EditMessage,
    InboxAnswer,
    InboxEntry,
    InboxList,
    MessageList,
    MessageRecord,
    SendMessage,
)
from common.settings import JuneSettings
from messaging.ledger import Delivery as QueuedDelivery
from messaging.ledger import InboxItem, LedgerError, LedgerMessage, MessageFilter

MessageId = Annotated[int, PathParam(ge=1, le=2**62)]
InboxStatus = Literal["NEW", "PROCESSING", "RESPONDED", "ERROR"]


def _delivery(delivery: QueuedDelivery) -> Delivery:
    audio = base64.b64encode(delivery.audio).decode() if delivery.audio else None
    return Delivery(id=delivery.id, message_id=delivery.message_id, action=delivery.action, platform=delivery.platform,
                    user_id=delivery.user_id, chat_id=delivery.chat_id, text=delivery.text, audio=audio,
                    target_message_id=delivery.target, reply_to=delivery.reply_to)


def _entry(found: tuple[InboxItem, LedgerMessage, LedgerMessage | None]) -> InboxEntry:
    item, message, answer = found
    return InboxEntry(id=item.id, status=item.status, message=message,
                      answer=answer, detail=item.detail, created_at=item.created_at,
                      updated_at=item.updated_at)


def as_ledger_error(error: BaseException) -> ApiError | None:
    """A ledger refusal, also one re-raised through the Messenger's handle."""
    if isinstance(error, LedgerError):
        cause = getattr(error, "cause", None)
        cause = cause if isinstance(cause, LedgerError) else error
        return ApiError(cause.status, cause.message, cause.code)
    return None


async def _call(method, *args, **kwargs):
    try:
        return await method.remote(*args, **kwargs)
    except LedgerError as error:
        raise as_ledger_error(error) from None


def owner(caller: CurrentCaller) -> Caller:
    if not caller.admin:
        raise ApiError(403, f"this API key ({caller.name}) is not an admin key: the Message API and the inbox "
                            "are the owner's", "admin_only")
    return caller


Owner = Annotated[Caller, Depends(owner)]


def router(settings: JuneSettings, messenger: DeploymentHandle) -> APIRouter:
    router = APIRouter()

    async def owned_delivery(delivery_id: int, caller: Caller) -> QueuedDelivery:
        delivery = await messenger.delivery.remote(delivery_id)
        if delivery is None or not (caller.admin or caller.may_act_for(delivery.user_id)):
            raise not_found(f"there is no delivery {delivery_id}", "delivery_not_found")
        return delivery

    @router.get("/v1/outbox", response_model=DeliveryList, tags=["bots"])
    async def outbox(caller: CurrentCaller, platform: Annotated[str, Query(pattern=PLATFORM_PATTERN)],
                     wait: Annotated[float, Query(ge=0, le=120)] = 0.0) -> DeliveryList:
        """What is queued for this platform's users (reminders, API sends, edits, inbox answers); waits up to
        `wait` seconds for something to arrive. Acknowledge each after doing it; until then it is handed out again."""
        users = ("*",) if caller.admin else caller.users + (caller.default_user,)
        found = await messenger.deliveries.remote(platform, users, min(wait, settings.outbox_max_wait_s))
        return DeliveryList(deliveries=[_delivery(d) for d in found])

    @router.post("/v1/outbox/{delivery_id}/ack", response_model=LedgerMessage, tags=["bots"])
    async def acknowledge(delivery_id: MessageId, body: Acknowledgement, caller: CurrentCaller) -> LedgerMessage:
        """The delivery was done (or could not be): the ledger's message is `sent` (or `failed`)."""
        await owned_delivery(delivery_id, caller)
        return await _call(messenger.acknowledge, delivery_id, body.delivered, body.platform_message_id,
                           body.detail)

    @router.post("/v1/ledger", response_model=LedgerMessage, tags=["bots"])
    async def record(body: MessageRecord, caller: CurrentCaller) -> LedgerMessage:
        """A bot's record of a message in or out, for the ledger the Message API serves."""
        acting_for(caller, body.user_id)
        return await _call(messenger.record, body.model_dump())

    @router.post("/v1/inbox", response_model=InboxEntry, tags=["bots"])
    async def to_inbox(body: MessageRecord, caller: CurrentCaller) -> InboxEntry:
        """A user's message the bot forwarded to the owner: an inbox item, NEW until the owner answers."""
        acting_for(caller, body.user_id)
        item = await _call(messenger.to_inbox, body.model_dump())
        return _entry(await _call(messenger.inbox_item, item.id))

    @router.get("/v1/messages", response_model=MessageList, tags=["messages"])
    async def list_messages(_: Owner, platform: Annotated[str | None, Query(pattern=PLATFORM_PATTERN)] = None,
                            user_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
                            conversation_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
                            direction: Literal["in", "out"] | None = None,
                            since: Annotated[datetime | None, Query(description="ISO 8601 time")] = None,
                            cursor: Annotated[int, Query(ge=0)] = 0,
                            limit: Annotated[int, Query(ge=1, le=200)] = 50) -> MessageList:
        """Messages in and out, oldest first, filtered; page on with `next_cursor`."""
        if since is not None and since.tzinfo is None:
            raise bad_request("give `since` with its time zone, e.g. 2026-12-01T09:00:00Z", "invalid_since")
        where = MessageFilter(platform, user_id, conversation_id, direction,
                              since.timestamp() if since else None, cursor, limit + 1)
        found = await _call(messenger.messages, where)
        page = found[:limit]
        return MessageList(messages=page,
                           next_cursor=page[-1].id if len(found) > limit else None)

    @router.get("/v1/messages/{message_id}", response_model=LedgerMessage, tags=["messages"])
    async def get_message(message_id: MessageId, _: Owner) -> LedgerMessage:
        return await _call(messenger.message, message_id)

    @router.post("/v1/messages", response_model=LedgerMessage, status_code=202, tags=["messages"])
    async def send_message(body: SendMessage, _: Owner) -> LedgerMessage:
        """Send a user text (and a voice note with `speak`) through their platform's bot; `status` is `queued`
        until the bot delivers it."""
        if not body.user_id.startswith(f"{body.platform}:"):
            raise bad_request(f"user {body.user_id!r} is not a {body.platform} user", "platform_mismatch")
        return await _call(messenger.send, body.platform, body.user_id, body.chat_id, body.text, body.speak,
                           body.conversation_id)

    @router.put("/v1/messages/{message_id}", response_model=LedgerMessage, status_code=202, tags=["messages"])
    async def replace_message(message_id: MessageId, body: EditMessage, _: Owner) -> LedgerMessage:
        """Replace the text of a message June sent; the bot edits the platform's message."""
        return await _call(messenger.edit, message_id, body.text)

    @router.patch("/v1/messages/{message_id}", response_model=LedgerMessage, status_code=202, tags=["messages"])
    async def amend_message(message_id: MessageId, body: AmendMessage, _: Owner) -> LedgerMessage:
        """Add text to the end (`append`) or the start (`prepend`) of a message June sent."""
        if body.append is None and body.prepend is None:
            raise bad_request("give append, prepend or both", "nothing_to_change")
        return await _call(messenger.edit, message_id, None, body.append, body.prepend)

    @router.get("/v1/inbox", response_model=InboxList, tags=["inbox"])
    async def inbox(_: Owner, status: InboxStatus | None = None,
                    limit: Annotated[int, Query(ge=1, le=200)] = 50) -> InboxList:
        """Messages from allowed users for the owner, newest first."""
        return InboxList(items=[_entry(found) for found in await _call(messenger.inbox, status, limit)])

    @router.get("/v1/inbox/{item_id}", response_model=InboxEntry, tags=["inbox"])
    async def inbox_item(item_id: MessageId, _: Owner) -> InboxEntry:
        return _entry(await _call(messenger.inbox_item, item_id))

    @router.post("/v1/inbox/{item_id}/reply", response_model=InboxEntry, status_code=202, tags=["inbox"])
    async def answer(item_id: MessageId, body: InboxAnswer, caller: CurrentCaller) -> InboxEntry:
        """The owner's answer to the user, once (409 `already_answered` after that): PROCESSING until the bot
        delivers it, then RESPONDED (ERROR if it could not; answering again retries)."""
        _, message, _ = await _call(messenger.inbox_item, item_id)
        if not (caller.admin or caller.may_act_for(message.user_id)):
            raise not_found(f"there is no inbox item {item_id}", "inbox_item_not_found")
        return _entry(await _call(messenger.answer_inbox, item_id, body.text))

    return router
