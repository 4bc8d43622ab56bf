"""``/session/<name>/messages``, ``…/chats`` and ``…/contacts``: read and send.

Agents may read and send (they answer the customers); each handler loads its input,
calls one service, dumps the result.
"""

from __future__ import annotations

from flask import request
from flask.views import MethodView

from api.auth import authenticate_request, company_id
from api.blueprint import Blueprint
from api.extensions import publisher, read_only, unit_of_work
from api.schemas.messages import (
    ChatPageSchema,
    ContactPageSchema,
    IdempotencyHeaderSchema,
    MessageCreateSchema,
    MessageListArgsSchema,
    MessagePageSchema,
    MessageWithHistorySchema,
    MessageWithJobSchema,
)
from api.schemas.pagination import PageArgsSchema
from shared.services import chats, messages

blp = Blueprint(
    "messages",
    __name__,
    url_prefix="/session",
    description="Messages, chats and contacts of a session (agents may read and send)",
)
# A text of 65,536 characters, each written as a JSON escaped surrogate pair
# ("\ud83d\ude00", 12 bytes), plus the rest of the body: far above the API's 64 KiB.
SEND_BODY_MAX_BYTES = 65_536 * 12 + 16 * 1024


def _room_for_a_long_text() -> None:
    """``before_request``: a send may carry up to 65,536 characters of any kind."""
    if request.method == "POST" and request.endpoint == "messages.MessageCollection":
        request.max_content_length = SEND_BODY_MAX_BYTES


blp.before_request(_room_for_a_long_text)
blp.before_request(authenticate_request)


@blp.route("/<string:name>/messages")
class MessageCollection(MethodView):
    @blp.arguments(MessageListArgsSchema, location="query")
    @blp.response(200, MessagePageSchema)
    @read_only
    def get(self, args, name: str):
        """Messages newest first; filter by chat, direction, since; page with ``before``."""
        return messages.list_messages(unit_of_work(), company_id(), name, **args)

    @blp.arguments(IdempotencyHeaderSchema, location="headers")
    @blp.arguments(MessageCreateSchema)
    @blp.response(202, MessageWithJobSchema)
    def post(self, headers, data, name: str):
        """Send a text (PENDING until the worker sends it; follow the job or the message).

        The session must be CONNECTED (409 otherwise). An ``Idempotency-Key`` header
        makes a retried request return the first message instead of sending twice.
        """
        return messages.send_message(
            unit_of_work(),
            publisher(),
            company_id(),
            name,
            idempotency_key=headers["idempotency_key"],
            **data,
        )


@blp.route("/<string:name>/messages/<string:message_id>")
@blp.response(200, MessageWithHistorySchema)
@read_only
def message(name: str, message_id: str):
    """One message, with the history of its acks."""
    return messages.get_message(unit_of_work(), company_id(), name, message_id)


@blp.route("/<string:name>/chats")
@blp.arguments(PageArgsSchema, location="query")
@blp.response(200, ChatPageSchema)
@read_only
def chat_list(args, name: str):
    """One row per chat, most recently active first: last message, unread count, contact."""
    return chats.list_chats(unit_of_work(), company_id(), name, **args)


@blp.route("/<string:name>/contacts")
@blp.arguments(PageArgsSchema, location="query")
@blp.response(200, ContactPageSchema)
@read_only
def contact_list(args, name: str):
    """The session's contacts, by number, paginated."""
    return chats.list_contacts(unit_of_work(), company_id(), name, **args)
