/*
 * WhatsApp Web simulator: the page's own modules, reached through window.require(name)
 * like on the real site (Meta's module system; an unknown name throws
 * `Requiring unknown module "X"`). They exist only once the page is linked.
 *
 * Names, methods and argument shapes mirror what whatsapp-web.js uses today:
 *   - wwebjs/whatsapp-web.js src/util/Injected/Utils.js: WWebJS.sendMessage (MsgKey.newId,
 *     new MsgKey({from, to, id, participant, selfDir: 'out'}), the message object
 *     {id, ack, body, from, to, local, self, t, isNewMsg, type}, msgContextInfo for quotes,
 *     `const [msgPromise, sendMsgResultPromise] = addAndSendMsgToChat(chat, message)`,
 *     Msg.get(key._serialized)), WWebJS.getChat (Chat.get(wid) ||
 *     findOrCreateLatestChat(wid).chat), getMessageModel (msg.serialize()).
 *   - wwebjs/whatsapp-web.js src/Client.js: Msg.on('add', msg => msg.isNewMsg ...),
 *     Msg.on('change:ack', (msg, ack) => ...), getMaybeMePnUser().
 *   - pedroslopez/whatsapp-web.js src/util/Injected/Store.js: the module names
 *     (WAWebCollections, WAWebMsgKey, WAWebSendMsgChatAction, WAWebUserPrefsMeUser,
 *     WAWebWidFactory).
 *
 * wa.js links the modules (`__waSimModules.link(env)`) when it shows the main screen
 * and feeds them the messages the server delivers (`ingest`).
 *
 * Two modules exist before the page is linked, like on the real site:
 *   - WAWebSocketModel: `Socket.state` ('OPENING', 'UNPAIRED', 'UNPAIRED_IDLE', 'CONNECTED');
 *   - WAWebAltDeviceLinkingApi: linking by phone number. whatsapp-web.js
 *     (pedroslopez/whatsapp-web.js src/util/Injected/AuthStore/AuthStore.js) reaches it as
 *     `AuthStore.PairingCodeLinkUtils = window.require('WAWebAltDeviceLinkingApi')` and
 *     src/Client.js requestPairingCode calls `setPairingType('ALT_DEVICE_LINKING')`,
 *     `await initializeAltDeviceLinking()`, then `startAltLinkingFlow(phoneNumber,
 *     showNotification)`, which resolves the 8-character code; it renews the code every
 *     `intervalMs` while `AuthStore.AppState.state` is UNPAIRED or UNPAIRED_IDLE.
 *     wa.js plugs the landing screen in (`setLinking(env)`), which asks the server for a
 *     code and shows the "Enter code on phone" screen.
 */
(() => {
  "use strict";

  const ACK = { ERROR: -1, PENDING: 0, SERVER: 1, DEVICE: 2, READ: 3, PLAYED: 4 };
  const hex = (n) =>
    Array.from(crypto.getRandomValues(new Uint8Array(n)), (b) => b.toString(16).padStart(2, "0")).join("");

  /** Backbone-style events: on/once/off/trigger, several space-separated names. */
  class Emitter {
    constructor() {
      Object.defineProperty(this, "_handlers", { value: new Map(), enumerable: false });
    }
    on(events, fn) {
      for (const e of events.split(/\s+/)) {
        if (!this._handlers.has(e)) this._handlers.set(e, []);
        this._handlers.get(e).push({ fn, once: false });
      }
      return this;
    }
    once(event, fn) {
      this.on(event, fn);
      this._handlers.get(event)[this._handlers.get(event).length - 1].once = true;
      return this;
    }
    off(events, fn) {
      for (const e of events.split(/\s+/)) {
        const list = this._handlers.get(e) || [];
        this._handlers.set(e, fn ? list.filter((h) => h.fn !== fn) : []);
      }
      return this;
    }
    trigger(event, ...args) {
      for (const h of (this._handlers.get(event) || []).slice()) {
        if (h.once) this.off(event, h.fn);
        try {
          h.fn(...args);
        } catch (e) {
          console.error(e); // a broken listener must not break the page
        }
      }
    }
  }

  /** A user or group id: "5511999990001@c.us", with `user`, `server`, `_serialized`. */
  class Wid {
    constructor(text) {
      const [user, server] = text.split("@");
      this.user = user.split(":")[0];
      this.device = user.includes(":") ? Number(user.split(":")[1]) : undefined;
      this.server = server;
      this._serialized = `${this.user}@${server}`;
    }
    isUser() { return this.server === "c.us"; }
    isGroup() { return this.server === "g.us"; }
    isLid() { return this.server === "lid"; }
    isStatus() { return false; }
    equals(other) { return !!other && keyOf(other) === this._serialized; }
    toString() { return this._serialized; }
  }

  const WID_RE = /^[0-9]{5,20}(:[0-9]+)?@(c\.us|g\.us)$/;
  function createWid(value) {
    if (value instanceof Wid) return value;
    const text = typeof value === "string" ? value : value && (value._serialized || value.$1);
    if (!text || !WID_RE.test(text)) throw new Error(`invalid wid: ${String(text)}`);
    return new Wid(text);
  }

  function keyOf(id) {
    if (id == null) return null;
    return typeof id === "string" ? id : id._serialized || id.$1 || String(id);
  }

  /** Message key; `_serialized` is `${fromMe}_${remote}_${id}` like the real site's. */
  class MsgKey {
    constructor({ from, to, id, participant, selfDir, fromMe, remote }) {
      if (selfDir !== undefined) {
        fromMe = selfDir === "out";
        remote = fromMe ? to : from;
      }
      if (!id || typeof id !== "string") throw new Error("MsgKey error: id is required");
      this.fromMe = !!fromMe;
      this.remote = createWid(remote);
      this.id = id;
      this.participant = participant ? createWid(participant) : undefined;
      this._serialized =
        `${this.fromMe}_${this.remote._serialized}_${id}` + (this.participant ? `_${this.participant._serialized}` : "");
    }
    toString() { return this._serialized; }
    /** Ids of messages created on WhatsApp Web: "3EB0" + 16 upper-case hex digits. */
    static newId() { return Promise.resolve(("3EB0" + hex(8)).toUpperCase()); }
  }

  /** A model: plain fields; set() fires change:<field> on it and on its collections. */
  class Model extends Emitter {
    constructor(attrs) {
      super();
      Object.defineProperty(this, "_collections", { value: [], enumerable: false });
      Object.assign(this, attrs);
    }
    set(attrs) {
      const changed = Object.keys(attrs).filter((k) => this[k] !== attrs[k]);
      for (const k of changed) this[k] = attrs[k];
      for (const k of changed) {
        this.trigger(`change:${k}`, this, this[k]);
        for (const c of this._collections) c.trigger(`change:${k}`, this, this[k]);
      }
      if (changed.length) {
        this.trigger("change", this);
        for (const c of this._collections) c.trigger("change", this);
      }
      return this;
    }
    unsafe() { return this; }
    serialize() {
      const out = {};
      for (const [k, v] of Object.entries(this)) {
        if (v instanceof Collection) continue;
        out[k] = v instanceof MsgKey || v instanceof Wid ? { ...v } : v;
      }
      return out;
    }
  }

  class Collection extends Emitter {
    constructor(modelClass) {
      super();
      this.modelClass = modelClass;
      Object.defineProperty(this, "_models", { value: new Map(), enumerable: false });
    }
    get(id) { return this._models.get(keyOf(id)); }
    add(model) {
      const key = keyOf(model.id);
      if (this._models.has(key)) return this._models.get(key);
      this._models.set(key, model);
      model._collections.push(this);
      this.trigger("add", model, this);
      return model;
    }
    getModelsArray() { return [...this._models.values()]; }
    get length() { return this._models.size; }
  }

  class Contact extends Model {
    get formattedName() { return this.name || this.pushname || `+${this.id.user}`; }
  }

  class Chat extends Model {
    get formattedTitle() { return this.contact ? this.contact.formattedName : this.id.user; }
  }

  class Msg extends Model {
    /** Reply context for a message quoting this one (Utils.js: quotedMessage.msgContextInfo(chat)). */
    msgContextInfo(chat) {
      return {
        quotedMsg: { type: this.type, body: this.body },
        quotedStanzaID: this.id.id,
        quotedParticipant: this.id.fromMe ? this.from : this.id.remote,
        quotedRemoteJid: chat.id,
      };
    }
    canReply() { return true; }
  }

  // ------------------------------------------------------------------ registry
  let registry = null;
  let missing = new Set();

  // The connection's state, readable before linking (whatsapp-web.js: AuthStore.AppState).
  const Socket = new Emitter();
  Socket.state = "OPENING";

  // Alt-device linking ("Link with phone number"); `linking` is wa.js's landing screen.
  const PAIRING_TYPES = ["QR_CODE", "ALT_DEVICE_LINKING"];
  let linking = null;
  let pairingType = "QR_CODE";
  let altInitialized = false;
  const WAWebAltDeviceLinkingApi = {
    getPairingType: () => pairingType,
    setPairingType(type) {
      if (!PAIRING_TYPES.includes(type)) throw new Error(`unknown pairing type ${String(type)}`);
      pairingType = type;
    },
    async initializeAltDeviceLinking() {
      altInitialized = true;
    },
    async initializeQRLinking() {
      altInitialized = false;
      pairingType = "QR_CODE";
    },
    /** Resolves the 8-character code the phone must enter; rejects when the page cannot link now. */
    async startAltLinkingFlow(phoneNumber, showNotification) {
      if (pairingType !== "ALT_DEVICE_LINKING" || !altInitialized) {
        throw new Error("alt device linking is not initialized");
      }
      if (!linking || !["UNPAIRED", "UNPAIRED_IDLE"].includes(Socket.state)) {
        throw new Error(`cannot link a device now (socket ${Socket.state})`);
      }
      const phone = String(phoneNumber == null ? "" : phoneNumber);
      if (!/^[0-9]{8,15}$/.test(phone)) throw new Error("invalid phone number");
      return linking.startCode(phone, showNotification !== false);
    },
  };
  const base = { WAWebSocketModel: { Socket }, WAWebAltDeviceLinkingApi };

  window.require = (name) => {
    let mod;
    if (!missing.has(name)) mod = (registry && registry[name]) || base[name];
    if (mod === undefined) throw new Error(`Requiring unknown module "${name}"`);
    return mod;
  };

  /**
   * Build the modules of a linked page.
   * env: {me: "5511…:N@c.us", send(body) -> Promise<server message>, alive() -> bool,
   *       retryMs() -> ms, transient(err) -> bool}
   */
  function link(env) {
    const me = createWid(env.me);
    const Msgs = new Collection(Msg);
    const Chats = new Collection(Chat);
    const Contacts = new Collection(Contact);

    function contactFor(wid, names) {
      const contact = Contacts.get(wid) || Contacts.add(new Contact({ id: wid, name: null, pushname: null }));
      const update = {};
      if (names.name && !contact.name) update.name = names.name;
      if (names.pushname && names.pushname !== contact.pushname) update.pushname = names.pushname;
      contact.set(update);
      return contact;
    }

    function chatFor(wid) {
      const found = Chats.get(wid);
      if (found) return found;
      const contact = wid.isUser() ? contactFor(wid, {}) : null;
      return Chats.add(new Chat({ id: wid, contact, unreadCount: 0, t: 0, msgs: new Collection(Msg) }));
    }

    function addToChat(chat, msg) {
      chat.msgs.add(msg);
      chat.set({ t: msg.t });
      if (!msg.id.fromMe) chat.set({ unreadCount: chat.unreadCount + 1 });
      return Msgs.add(msg);
    }

    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

    /** Hand a new message to the server until it takes it (ack SERVER) or refuses it. */
    async function deliver(msg) {
      for (;;) {
        if (!env.alive()) return { messageSendResult: "ERROR_PAGE_CLOSED" };
        try {
          const stored = await env.send({
            id: msg.id.id,
            to: msg.id.remote.user,
            body: msg.body,
            quoted: msg.quotedStanzaID || null,
          });
          if (stored.ack > msg.ack) msg.set({ ack: stored.ack });
          return { messageSendResult: "OK" };
        } catch (e) {
          if (!env.transient(e)) {
            msg.set({ ack: ACK.ERROR });
            return { messageSendResult: "ERROR" };
          }
          await sleep(env.retryMs()); // offline: stays PENDING and goes when back
        }
      }
    }

    const modules = {
      WAWebCollections: { Msg: Msgs, Chat: Chats, Contact: Contacts },
      WAWebMsgKey: MsgKey,
      WAWebWidFactory: { createWid, createWidFromWidLike: createWid, asUserWidOrThrow: createWid },
      WAWebUserPrefsMeUser: {
        getMaybeMePnUser: () => me,
        getMaybeMeUser: () => me,
        getMeUser: () => me,
        getMaybeMeLidUser: () => null,
      },
      WAWebFindChatAction: {
        /** Resolves {chat, created}; only people (…@c.us) can be found by number. */
        findOrCreateLatestChat: async (wid) => {
          const id = createWid(wid);
          const known = Chats.get(id);
          if (known) return { chat: known, created: false };
          if (!id.isUser()) throw new Error("chat not found");
          return { chat: chatFor(id), created: true };
        },
      },
      WAWebSendMsgChatAction: {
        /** Returns [msgPromise, sendMsgResultPromise] like the real action. */
        addAndSendMsgToChat: (chat, message) => {
          const existing = Msgs.get(message.id);
          if (existing) return [Promise.resolve(existing), Promise.resolve({ messageSendResult: "OK" })];
          const msg = new Msg({ ...message });
          const added = Promise.resolve().then(() => addToChat(chat, msg));
          return [added, added.then(deliver)];
        },
      },
    };
    registry = modules;

    return {
      modules,
      /** A message from the server's poll: add it (isNewMsg) or apply its new receipt. */
      ingest(m) {
        const remote = createWid(`${m.chat}@c.us`);
        const key = new MsgKey({ fromMe: m.from_me, remote, id: m.id });
        const known = Msgs.get(key);
        if (known) {
          if (m.ack !== known.ack && (known.ack !== ACK.ERROR || m.ack === ACK.ERROR)) known.set({ ack: m.ack });
          return known;
        }
        if (!m.from_me) contactFor(remote, { name: m.name, pushname: m.push_name });
        const chat = chatFor(remote);
        const quoted = m.quoted ? chat.msgs.getModelsArray().find((q) => q.id.id === m.quoted) : null;
        const quoteFields = m.quoted
          ? quoted
            ? quoted.msgContextInfo(chat)
            : { quotedStanzaID: m.quoted, quotedParticipant: remote, quotedRemoteJid: remote, quotedMsg: { type: "chat" } }
          : {};
        return addToChat(
          chat,
          new Msg({
            id: key,
            body: m.body,
            type: "chat",
            t: Math.floor(m.ts),
            from: m.from_me ? me : remote,
            to: m.from_me ? remote : me,
            ack: m.ack,
            isNewMsg: true,
            self: m.from_me ? "out" : "in",
            local: false,
            ...quoteFields,
          })
        );
      },
    };
  }

  window.__waSimModules = {
    link,
    unlink() {
      registry = null;
    },
    /** The socket state the page is in (UNPAIRED on the landing screen, CONNECTED once linked). */
    setSocketState(state) {
      Socket.state = state;
      Socket.trigger("change:state", Socket, state);
    },
    /** env: {startCode(phone, notify) -> Promise<code>} while linking is possible, else null. */
    setLinking(env) {
      linking = env;
      if (!env) {
        pairingType = "QR_CODE";
        altInitialized = false;
      }
    },
    setMissing(names) {
      missing = new Set(names || []);
    },
  };
})();
