"""Conversations and users: list, read and delete a user's conversations; delete or export all June keeps of a user."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi import Path as PathParam

from api.callers import CurrentCaller, acting_for
from api.errors import not_found
from api.schemas import ID_PATTERN, ConversationDeleted, ConversationList, ConversationTurns, UserDeleted, UserExport
from api.shared import Shared, UserQuery


def router(shared: Shared) -> APIRouter:
    router = APIRouter()

    @router.get("/v1/conversations", response_model=ConversationList)
    async def list_conversations(caller: CurrentCaller,
                                 user_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None) -> ConversationList:
        """The user's conversations, the most recently used first."""
        user = acting_for(caller, user_id)
        summaries = await shared.pipeline.conversations(user)
        return ConversationList(user_id=user, conversations=[asdict(summary) for summary in summaries])

    @router.get("/v1/conversations/{conversation_id}", response_model=ConversationTurns)
    async def get_conversation(conversation_id: Annotated[str, PathParam(pattern=ID_PATTERN)], caller: CurrentCaller,
                               user_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None) -> ConversationTurns:
        """One conversation's turns, oldest first (the newest 200)."""
        user = acting_for(caller, user_id)
        turns = await shared.pipeline.conversation(user, conversation_id)
        if not turns:
            raise not_found(f"no conversation {conversation_id!r} for user {user!r}", "conversation_not_found")
        said = [{"role": turn.role, "content": turn.content} for turn in turns]  # the tool calls are in the export
        return ConversationTurns(conversation_id=conversation_id, user_id=user, turns=said)

    @router.delete("/v1/conversations/{conversation_id}", response_model=ConversationDeleted)
    async def delete_conversation(conversation_id: Annotated[str, PathParam(pattern=ID_PATTERN)],
                                  caller: CurrentCaller, user_id: UserQuery = None) -> ConversationDeleted:
        """Delete a conversation's turns (and a question June was waiting on in it)."""
        user = acting_for(caller, user_id)
        deleted = await shared.pipeline.forget_conversation(user, conversation_id)
        return ConversationDeleted(conversation_id=conversation_id, user_id=user, deleted_turns=deleted)

    @router.delete("/v1/users/{user_id}", response_model=UserDeleted)
    async def delete_user(user_id: Annotated[str, PathParam(pattern=ID_PATTERN)], caller: CurrentCaller) -> UserDeleted:
        """Delete everything June keeps about a user: history, notes, pending questions, preferences, reminders, stored
        answers, and the message ledger's messages."""
        user = acting_for(caller, user_id)
        deleted = await shared.pipeline.forget_user(user)
        deleted["stored_answers"] = await asyncio.to_thread(shared.answers.forget_user, user)
        if shared.messenger is not None:
            deleted["messages"] = await shared.messenger.forget_user.remote(user)
        return UserDeleted(user_id=user, deleted=deleted)

    @router.get("/v1/users/{user_id}/export", response_model=UserExport)
    async def export_user(user_id: Annotated[str, PathParam(pattern=ID_PATTERN)], caller: CurrentCaller) -> UserExport:
        """Everything June keeps about a user, as JSON."""
        user = acting_for(caller, user_id)
        data = await shared.pipeline.export_user(user)
        if shared.messenger is not None:
            data["messages"] = await shared.messenger.export_user.remote(user)
        return UserExport(user_id=user, exported_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), **data)

    return router
