"""Page knowledge for messages: WhatsApp Web's own modules, the injected scripts, the mapping.

A linked page is read and driven through the site's module system (``window.require``),
the way whatsapp-web.js does it today, never by scraping the DOM:

* wwebjs/whatsapp-web.js ``src/Client.js`` (attachEventListeners): ``Msg.on('add')`` for
  messages with ``msg.isNewMsg``, ``Msg.on('change:ack', (msg, ack) => …)``, events leaving
  the page through exposed functions (onAddMessageEvent / onMessageAckEvent);
* wwebjs/whatsapp-web.js ``src/util/Injected/Utils.js``: ``WWebJS.sendMessage`` (key from
  ``WAWebMsgKey.newId()`` and ``new MsgKey({from, to, id, participant, selfDir: 'out'})``,
  the message object, ``msgContextInfo`` for a reply, ``const [msgPromise,
  sendMsgResultPromise] = WAWebSendMsgChatAction.addAndSendMsgToChat(chat, message)``),
  ``WWebJS.getChat`` (``Chat.get(wid) || findOrCreateLatestChat(wid).chat``) and
  ``getMessageModel`` (2026 builds may expose a key's string as ``$1`` instead of
  ``_serialized``; both are read);
* pedroslopez/whatsapp-web.js ``src/util/Injected/Store.js``: the module names.

Events leave the page through one Playwright binding (:data:`BINDING`), exposed on the
browser context so it survives reloads. :func:`install` subscribes once per document
(guarded by :data:`page.HOOK_FLAG`); it first replays the new messages already in the
``Msg`` collection, because the site adds the messages that arrived while no browser ran
before anyone can subscribe.

The payloads (``message`` / ``message_ack``) are the contract with storage; see
:func:`parse_message` and :func:`parse_ack`.
"""

from __future__ import annotations

import re
import secrets
from string import Template
from typing import Any

from playwright.async_api import Page

from workers.whatsapp.page import HOOK_FLAG

# Every module the driver uses; a missing one means WhatsApp Web changed.
REQUIRED_MODULES: tuple[str, ...] = (
    "WAWebCollections",  # Msg, Chat, Contact
    "WAWebMsgKey",
    "WAWebSendMsgChatAction",
    "WAWebUserPrefsMeUser",
    "WAWebWidFactory",
    "WAWebFindChatAction",
)
BINDING = "__zaphubMessageEvent"
MESSAGE_EVENTS = ("message", "message_ack")
ACK_ERROR, ACK_PENDING, ACK_SERVER, ACK_DEVICE, ACK_READ, ACK_PLAYED = -1, 0, 1, 2, 3, 4
# Ids WhatsApp Web gives the messages it creates (Utils.js: MsgKey.newId()).
WEB_ID_PREFIX = "3EB0"

_CHAT_ID_RE = re.compile(r"^[0-9]{5,20}@(c\.us|g\.us)$")
_MESSAGE_ID_RE = re.compile(r"^[0-9A-Za-z]{4,64}$")
_PHONE_RE = re.compile(r"^\+?[0-9][0-9 ()-]{3,30}$")


class MessagingError(RuntimeError):
    """A message could not be sent or looked up in the page."""


class SessionNotConnected(MessagingError):
    """The session has no linked, ready page on this worker."""


class ModuleMissing(MessagingError):
    """A WhatsApp Web module the driver needs is gone (the site changed)."""

    def __init__(self, name: str) -> None:
        super().__init__(module_missing_reason(name))
        self.module = name


class ChatNotFound(MessagingError):
    """The page does not know (and cannot open) that chat."""


class QuotedMessageNotFound(MessagingError):
    """The message to reply to is not in the page."""


def module_missing_reason(name: str) -> str:
    """The ``last_error`` of a session whose page lacks module ``name``."""
    return f"WhatsApp Web changed: module {name} missing"


def new_message_id() -> str:
    """A fresh bare message id in WhatsApp Web's format ("3EB0" + 16 upper-case hex)."""
    return WEB_ID_PREFIX + secrets.token_hex(8).upper()


def chat_id_for(to: str) -> str:
    """A phone number (digits, optionally ``+``/spaces/dashes) → ``<digits>@c.us``; a chat id passes.

    Raises ``ValueError`` for anything else.
    """
    text = str(to).strip()
    if _CHAT_ID_RE.match(text):
        return text
    if _PHONE_RE.match(text):
        digits = re.sub(r"\D", "", text)
        if 5 <= len(digits) <= 20:
            return f"{digits}@c.us"
    raise ValueError(f"not a phone number or chat id: {to!r}")


def own_message_key(chat_id: str, message_id: str) -> str:
    """Serialized key of a message this session sent: ``true_<chat>_<id>``."""
    return f"true_{chat_id_for(chat_id)}_{message_id}"


# -- injected JS ------------------------------------------------------------------------
# Shared helpers of every script: read a key/wid as a string, map a Msg model to our payload.
_PRELUDE = Template("""
  const req = (name) => window.require(name);
  const str = (w) => w == null ? null
    : (typeof w === 'string' ? w : (w._serialized || w.$$1 || String(w)));
  const missingModule = () => {
    for (const name of $modules) {
      try { if (req(name) == null) return name; } catch (e) { return name; }
    }
    return null;
  };
  const toPayload = (msg) => {
    const key = msg.id;
    const chatId = str(key.remote);
    const fromMe = !!key.fromMe;
    const meWid = req('WAWebUserPrefsMeUser').getMaybeMePnUser();
    const me = meWid ? str(meWid) : null;
    let quoted = null;
    if (msg.quotedStanzaID) {
      const qFromMe = !!me && str(msg.quotedParticipant) === me;
      const MsgKey = req('WAWebMsgKey');
      quoted = str(new MsgKey({fromMe: qFromMe, remote: key.remote, id: msg.quotedStanzaID}));
    }
    let contact = null;
    if (key.remote && key.remote.server === 'c.us') {
      const c = req('WAWebCollections').Contact.get(chatId);
      contact = {number: key.remote.user, name: (c && c.name) || null,
                 push_name: (c && c.pushname) || null};
    }
    return {
      wa_id: str(key), id: key.id, chat_id: chatId, from_me: fromMe,
      sender: fromMe ? me : str(msg.author || msg.from),
      recipient: fromMe ? str(msg.to) : me,
      timestamp: msg.t, type: msg.type, body: msg.body == null ? '' : String(msg.body),
      ack: msg.ack, quoted_wa_id: quoted, contact,
    };
  };
""").substitute(modules="[" + ",".join(f"'{m}'" for m in REQUIRED_MODULES) + "]")

# Once per document: check the modules, replay new messages already there, subscribe.
INSTALL_JS = Template("""
() => {
  $prelude
  if (window[$flag]) return {ok: true, replayed: 0};
  const missing = missingModule();
  if (missing) return {missing};
  const emit = window[$binding];
  if (typeof emit !== 'function') return {retry: 'binding not ready'};
  const { Msg } = req('WAWebCollections');
  const send = (kind, build) => {
    try { emit(kind, build()); } catch (e) { console.error('zaphub', e); }
  };
  let replayed = 0;
  for (const msg of Msg.getModelsArray()) {
    if (msg.isNewMsg) { send('message', () => toPayload(msg)); replayed += 1; }
  }
  Msg.on('add', (msg) => { if (msg.isNewMsg) send('message', () => toPayload(msg)); });
  Msg.on('change:ack', (msg, ack) => send('message_ack', () => (
    {wa_id: str(msg.id), chat_id: str(msg.id.remote), ack})));
  window[$flag] = true;
  return {ok: true, replayed};
}
""").substitute(prelude=_PRELUDE, flag=f"'{HOOK_FLAG}'", binding=f"'{BINDING}'")

# Send with the caller's id; a key already in Msg is not sent again (a retried job).
SEND_JS = Template("""
async ({chatId, text, messageId, quotedWaId, waitMs}) => {
  $prelude
  const missing = missingModule();
  if (missing) return {error: 'module', module: missing};
  const { Msg, Chat } = req('WAWebCollections');
  const wid = req('WAWebWidFactory').createWid(chatId);
  let chat = Chat.get(wid);
  if (!chat) {
    try { chat = (await req('WAWebFindChatAction').findOrCreateLatestChat(wid)).chat; }
    catch (e) { chat = null; }
  }
  if (!chat) return {error: 'chat'};
  const meUser = req('WAWebUserPrefsMeUser').getMaybeMePnUser();
  const MsgKey = req('WAWebMsgKey');
  const isGroup = typeof chat.id.isGroup === 'function' && chat.id.isGroup();
  const key = new MsgKey({from: meUser, to: chat.id, id: messageId,
                          participant: isGroup ? meUser : undefined, selfDir: 'out'});
  const known = Msg.get(str(key));
  if (known) return {message: toPayload(known), resent: false};
  let quotedFields = {};
  if (quotedWaId) {
    const quoted = Msg.get(quotedWaId);
    if (!quoted) return {error: 'quoted'};
    quotedFields = quoted.msgContextInfo(chat);
  }
  const message = {
    id: key, ack: 0, body: text, from: meUser, to: chat.id, local: true, self: 'out',
    t: Math.floor(Date.now() / 1000), isNewMsg: true, type: 'chat', ...quotedFields,
  };
  const result = req('WAWebSendMsgChatAction').addAndSendMsgToChat(chat, message);
  const [added, sent] = Array.isArray(result) ? result : [result, result];
  await added;
  // Wait for the server's answer (ack SERVER) within the caller's budget; a send that
  // is still PENDING then goes on inside the page and can be found by its key later.
  await Promise.race([sent, new Promise((r) => setTimeout(r, waitMs))]);
  const msg = Msg.get(str(key));
  return msg ? {message: toPayload(msg), resent: true} : {error: 'lost'};
}
""").substitute(prelude=_PRELUDE)

FIND_JS = Template("""
(waId) => {
  $prelude
  const missing = missingModule();
  if (missing) return {error: 'module', module: missing};
  const msg = req('WAWebCollections').Msg.get(waId);
  return {message: msg ? toPayload(msg) : null};
}
""").substitute(prelude=_PRELUDE)


# -- page operations (loop thread) --------------------------------------------------------
async def install(page: Page) -> tuple[bool, str | None]:
    """Subscribe the page's message events (idempotent per document).

    Returns ``(installed, missing_module)``; ``(False, None)`` means try again later.
    """
    result = await page.evaluate(INSTALL_JS)
    if not isinstance(result, dict):
        return False, None
    if result.get("missing"):
        return False, str(result["missing"])
    return bool(result.get("ok")), None


def _result(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        raise MessagingError("unexpected answer from the page")
    error = raw.get("error")
    if error == "module":
        raise ModuleMissing(str(raw.get("module")))
    if error == "chat":
        raise ChatNotFound("chat unknown")
    if error == "quoted":
        raise QuotedMessageNotFound("quoted message unknown")
    if error:
        raise MessagingError(f"send failed: {error}")
    message = raw.get("message")
    return None if message is None else parse_message(message)


async def send_text(
    page: Page, *, chat_id: str, text: str, message_id: str, quoted_wa_id: str | None, wait: float
) -> dict[str, Any]:
    """Send ``text`` with the caller's bare ``message_id``; the ``message`` payload back."""
    if not isinstance(text, str) or not text:
        raise ValueError("text must be a non-empty string")
    if not isinstance(message_id, str) or not _MESSAGE_ID_RE.match(message_id):
        raise ValueError(f"not a message id: {message_id!r}")
    args = {
        "chatId": chat_id_for(chat_id),
        "text": text,
        "messageId": message_id,
        "quotedWaId": quoted_wa_id,
        "waitMs": int(max(wait, 0.0) * 1000),
    }
    payload = _result(await page.evaluate(SEND_JS, args))
    if payload is None:
        raise MessagingError("sent message not found in the page")
    return payload


async def find_message(page: Page, wa_id: str) -> dict[str, Any] | None:
    """The ``message`` payload of serialized key ``wa_id``, or None."""
    return _result(await page.evaluate(FIND_JS, wa_id))


# -- payload mapping ---------------------------------------------------------------------
def _opt_str(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _ack(value: Any) -> int:
    ack = int(value if value is not None else ACK_PENDING)
    if not ACK_ERROR <= ack <= ACK_PLAYED:
        raise ValueError(f"ack out of range: {ack}")
    return ack


def parse_message(raw: Any) -> dict[str, Any]:
    """Validate and normalise a ``message`` payload from the page (``ValueError`` if bad)."""
    if not isinstance(raw, dict):
        raise ValueError("message payload is not an object")
    wa_id, chat_id = _opt_str(raw.get("wa_id")), _opt_str(raw.get("chat_id"))
    if not wa_id or not chat_id or not raw.get("id"):
        raise ValueError("message payload without wa_id/id/chat_id")
    contact = raw.get("contact")
    if isinstance(contact, dict) and contact.get("number"):
        contact = {
            "number": str(contact["number"]),
            "name": _opt_str(contact.get("name")),
            "push_name": _opt_str(contact.get("push_name")),
        }
    else:
        contact = None
    return {
        "wa_id": wa_id,
        "id": str(raw["id"]),
        "chat_id": chat_id,
        "from_me": bool(raw.get("from_me")),
        "sender": _opt_str(raw.get("sender")),
        "recipient": _opt_str(raw.get("recipient")),
        "timestamp": int(raw.get("timestamp") or 0),
        "type": str(raw.get("type") or "chat"),
        "body": "" if raw.get("body") is None else str(raw["body"]),
        "ack": _ack(raw.get("ack")),
        "quoted_wa_id": _opt_str(raw.get("quoted_wa_id")),
        "contact": contact,
    }


def parse_ack(raw: Any) -> dict[str, Any]:
    """Validate and normalise a ``message_ack`` payload from the page (``ValueError`` if bad)."""
    if not isinstance(raw, dict) or not raw.get("wa_id") or not raw.get("chat_id"):
        raise ValueError("ack payload without wa_id/chat_id")
    return {"wa_id": str(raw["wa_id"]), "chat_id": str(raw["chat_id"]), "ack": _ack(raw.get("ack"))}


def parse_event(kind: str, raw: Any) -> dict[str, Any]:
    """Payload of a page event ``kind`` (one of :data:`MESSAGE_EVENTS`)."""
    if kind == "message":
        return parse_message(raw)
    if kind == "message_ack":
        return parse_ack(raw)
    raise ValueError(f"unknown page event {kind!r}")
