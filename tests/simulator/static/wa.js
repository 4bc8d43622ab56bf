/*
 * WhatsApp Web simulator page.
 *
 * Lifecycle: loading screen -> (stored login valid ? syncing -> main : landing QR).
 * Login state is kept like the real page: a non-extractable HKDF CryptoKey in
 * IndexedDB "wawc_db_enc" (store "keys", key "enc"), the device secrets in
 * localStorage encrypted (AES-GCM) with a key derived from it, and the device id in
 * IndexedDB "wawc" (store "user", key "device").  Class names are random per load.
 *
 * Messages live in the page's modules (modules.js, reached through window.require once
 * linked). The poll cursor (highest message sequence seen) is kept in IndexedDB "wawc"
 * (store "user", key "msg-cursor"), so a page that comes back after being closed gets
 * what arrived meanwhile.
 */
(() => {
  "use strict";

  const boot = window.waBootConfig || {};
  let clockScale = boot.clockScale || 1;
  const LS = {
    salt: "WebEncKeySalt",
    secrets: "wa-secrets",
    wid: "last-wid-md",
    name: "me-display-name",
  };
  const ENC_DB = "wawc_db_enc";
  const USER_DB = "wawc";
  const CURSOR_KEY = "msg-cursor";
  const SimModules = window.__waSimModules;
  delete window.__waSimModules; // private to the page, like the real bundle's internals
  SimModules.setMissing(boot.missingModules);
  const app = document.getElementById("app");

  // ------------------------------------------------------------------ utils
  const rand = (n) => crypto.getRandomValues(new Uint8Array(n));
  const b64 = (u8) => btoa(String.fromCharCode(...u8));
  const b64d = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  const utf8 = (s) => new TextEncoder().encode(s);
  const PAGE_ID = b64(rand(12));
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const scaled = (ms) => ms / clockScale;
  const pollMs = () => Math.max(100, scaled(400));
  const retryMs = () => Math.max(200, scaled(1000));
  let epoch = 0; // bumped on every screen change; loops of older screens stop

  const classNames = {};
  const cls = (name) =>
    classNames[name] || (classNames[name] = "_a" + Math.random().toString(36).slice(2, 8));

  const STYLES = {
    screen: "position:fixed;inset:0;display:flex;align-items:center;justify-content:center;flex-direction:column;background:#f0f2f5;font:14px Segoe UI,Helvetica,Arial,sans-serif;color:#41525d",
    progress: "width:420px;height:4px",
    landing: "background:#fff;padding:48px;display:flex;gap:48px;align-items:flex-start;box-shadow:0 1px 3px rgba(0,0,0,.2)",
    title: "font-size:28px;font-weight:300;margin:0 0 24px",
    qr: "width:264px;height:264px;display:flex;align-items:center;justify-content:center",
    reloadWrap: "display:flex;align-items:center;justify-content:center",
    reload: "width:176px;height:176px;border-radius:50%;border:0;background:#00a884;color:#fff;cursor:pointer;display:flex;flex-direction:column;align-items:center;justify-content:center;font-size:14px",
    shell: "position:fixed;inset:0;display:flex;font:14px Segoe UI,Helvetica,Arial,sans-serif;color:#111b21",
    side: "width:30%;min-width:300px;border-right:1px solid #d1d7db;display:flex;flex-direction:column",
    header: "height:59px;background:#f0f2f5;display:flex;align-items:center;padding:0 16px",
    pane: "flex:1;overflow-y:auto;background:#fff;min-height:100px",
    grid: "min-height:100%",
    banner: "background:#ffd279;padding:12px 16px;display:flex;gap:12px;align-items:center",
    row: "padding:12px 16px;border-bottom:1px solid #e9edef;cursor:pointer;display:flex;flex-direction:column",
    rowActive: "padding:12px 16px;border-bottom:1px solid #e9edef;cursor:pointer;display:flex;flex-direction:column;background:#f0f2f5",
    snippet: "color:#667781;white-space:nowrap;overflow:hidden;text-overflow:ellipsis",
    unread: "background:#25d366;color:#fff;border-radius:10px;padding:0 6px;align-self:flex-end",
    right: "flex:1;display:flex;flex-direction:column;background:#efeae2",
    intro: "flex:1;display:flex;flex-direction:column;align-items:center;justify-content:center;background:#f0f2f5",
    mainPane: "flex:1;display:flex;flex-direction:column",
    messages: "flex:1;overflow-y:auto;padding:16px 48px;display:flex;flex-direction:column;gap:4px",
    bubbleIn: "align-self:flex-start;background:#fff;padding:6px 9px;border-radius:8px;max-width:65%",
    bubbleOut: "align-self:flex-end;background:#d9fdd3;padding:6px 9px;border-radius:8px;max-width:65%",
    footer: "background:#f0f2f5;padding:10px 16px;display:flex;gap:8px",
    composer: "flex:1;background:#fff;border-radius:8px;padding:9px 12px;min-height:20px;outline:none",
    overlay: "position:fixed;inset:0;background:rgba(255,255,255,.85);display:flex;align-items:center;justify-content:center;z-index:10",
    dialog: "background:#fff;padding:24px;max-width:500px;box-shadow:0 17px 50px rgba(11,20,26,.19)",
    buttons: "display:flex;justify-content:flex-end;gap:10px;margin-top:24px",
  };
  const style = document.createElement("style");
  style.textContent = Object.entries(STYLES)
    .map(([name, rules]) => `.${cls(name)}{${rules}}`)
    .join("\n");
  document.head.appendChild(style);

  /** Tiny element builder: h("div", {class: "x", "data-ref": r}, child, "text"). */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "style") el.className = cls(v);
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function setScreen(node) {
    epoch += 1;
    app.replaceChildren(node);
    return epoch;
  }

  class ApiError extends Error {
    constructor(status, message) {
      super(message || `HTTP ${status}`);
      this.status = status; // 0 = network error
    }
  }

  async function api(method, path, payload) {
    let resp;
    try {
      resp = await fetch(path, {
        method,
        cache: "no-store",
        headers: payload ? { "Content-Type": "application/json" } : {},
        body: payload ? JSON.stringify(payload) : undefined,
      });
    } catch (e) {
      throw new ApiError(0, "network error");
    }
    let data = null;
    try {
      data = await resp.json();
    } catch (e) {
      data = null;
    }
    if (!resp.ok) throw new ApiError(resp.status, data && data.error);
    if (data && typeof data.clock_scale === "number" && data.clock_scale > 0) {
      clockScale = data.clock_scale;
    }
    return data;
  }

  const transient = (e) => !(e instanceof ApiError) || e.status === 0 || e.status >= 500;

  // -------------------------------------------------------------- indexeddb
  function idbPut(name, store, key, value) {
    return new Promise((resolve, reject) => {
      const req = indexedDB.open(name, 1);
      req.onupgradeneeded = () => {
        if (!req.result.objectStoreNames.contains(store)) req.result.createObjectStore(store);
      };
      req.onerror = () => reject(req.error);
      req.onsuccess = () => {
        const db = req.result;
        try {
          const tx = db.transaction(store, "readwrite");
          tx.objectStore(store).put(value, key);
          tx.oncomplete = () => (db.close(), resolve());
          tx.onerror = tx.onabort = () => (db.close(), reject(tx.error));
        } catch (e) {
          db.close();
          reject(e);
        }
      };
    });
  }

  /** Read a value; rejects if the database or store does not exist (never creates it). */
  function idbGet(name, store, key) {
    return new Promise((resolve, reject) => {
      const req = indexedDB.open(name);
      req.onupgradeneeded = () => req.transaction.abort();
      req.onerror = () => reject(req.error || new Error("missing database"));
      req.onsuccess = () => {
        const db = req.result;
        try {
          const get = db.transaction(store, "readonly").objectStore(store).get(key);
          get.onsuccess = () => (db.close(), resolve(get.result));
          get.onerror = () => (db.close(), reject(get.error));
        } catch (e) {
          db.close();
          reject(e);
        }
      };
    });
  }

  function idbDelete(name) {
    return new Promise((resolve) => {
      const req = indexedDB.deleteDatabase(name);
      req.onsuccess = req.onerror = req.onblocked = () => resolve();
    });
  }

  async function wipeStorage() {
    localStorage.clear();
    await idbDelete(USER_DB);
    await idbDelete(ENC_DB);
  }

  // ------------------------------------------------------------ login store
  function deriveAes(baseKey, salt) {
    return crypto.subtle.deriveKey(
      { name: "HKDF", hash: "SHA-256", salt, info: utf8("WhatsApp Web Secrets") },
      baseKey,
      { name: "AES-GCM", length: 256 },
      false,
      ["encrypt", "decrypt"]
    );
  }

  /** The login key: imported from random bytes like the site, or (key mode "generate") never raw. */
  async function newLoginKey() {
    if (boot.keyMode === "generate") {
      return crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
    }
    const raw = rand(32);
    const baseKey = await crypto.subtle.importKey("raw", raw, "HKDF", false, ["deriveKey"]);
    raw.fill(0);
    return baseKey;
  }

  /** The AES key of the stored secrets: derived from an HKDF key, or the generated AES key itself. */
  const secretsKey = (baseKey, salt) =>
    baseKey.algorithm.name === "AES-GCM" ? Promise.resolve(baseKey) : deriveAes(baseKey, salt);

  async function storeLogin(device) {
    const baseKey = await newLoginKey();
    await idbPut(ENC_DB, "keys", "enc", baseKey);
    const salt = rand(16);
    const iv = rand(12);
    const aes = await secretsKey(baseKey, salt);
    const secrets = JSON.stringify({ device_id: device.device_id, token: device.token });
    const ct = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv }, aes, utf8(secrets)));
    localStorage.setItem(LS.salt, b64(salt));
    localStorage.setItem(LS.secrets, JSON.stringify({ iv: b64(iv), ct: b64(ct) }));
    localStorage.setItem(LS.wid, JSON.stringify(device.wid));
    localStorage.setItem(LS.name, JSON.stringify(device.push_name));
    await idbPut(USER_DB, "user", "device", device.device_id);
  }

  /** Decrypt the stored secrets; throws if anything is missing or wrong. */
  async function loadLogin() {
    const baseKey = await idbGet(ENC_DB, "keys", "enc");
    if (!(baseKey instanceof CryptoKey) || !["HKDF", "AES-GCM"].includes(baseKey.algorithm.name)) {
      throw new Error("stored key is not a CryptoKey");
    }
    const box = JSON.parse(localStorage.getItem(LS.secrets) || "null");
    const salt = localStorage.getItem(LS.salt);
    if (!box || !salt) throw new Error("no stored secrets");
    const aes = await secretsKey(baseKey, b64d(salt));
    const plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: b64d(box.iv) }, aes, b64d(box.ct));
    const secrets = JSON.parse(new TextDecoder().decode(plain));
    const deviceId = await idbGet(USER_DB, "user", "device");
    if (deviceId !== secrets.device_id) throw new Error("device id mismatch");
    return secrets;
  }

  // ---------------------------------------------------------- progress bits
  function animateProgress(progress, ms) {
    const start = performance.now();
    return new Promise((resolve) => {
      const tick = () => {
        const frac = Math.min(1, (performance.now() - start) / scaled(ms));
        progress.value = Math.round(frac * 100);
        if (frac >= 1) resolve();
        else setTimeout(tick, 30);
      };
      tick();
    });
  }

  async function showSyncing(ms) {
    const progress = h("progress", { value: 0, max: 100, style: "progress" });
    setScreen(
      h("div", { "data-testid": "intro-syncing", style: "screen" },
        progress, h("div", {}, "Loading your chats"))
    );
    await animateProgress(progress, ms);
  }

  // ------------------------------------------------------------------- boot
  async function bootSequence() {
    const progress = h("progress", { value: 0, max: 100, style: "progress" });
    const status = h("div", {}, "End-to-end encrypted");
    setScreen(h("div", { id: "initial_startup", style: "screen" }, h("div", {}, "WhatsApp"), progress, status));
    await animateProgress(progress, 1000);
    for (;;) {
      try {
        const cfg = await api("GET", "/api/config");
        SimModules.setMissing(cfg.missing_modules);
        break;
      } catch (e) {
        status.textContent = "Connecting… retrying";
        await sleep(retryMs());
      }
    }
    let creds = null;
    try {
      creds = await loadLogin();
    } catch (e) {
      creds = null;
    }
    let cursor = 0;
    if (creds) {
      try {
        cursor = Number(await idbGet(USER_DB, "user", CURSOR_KEY)) || 0;
      } catch (e) {
        cursor = 0;
      }
    }
    while (creds) {
      try {
        const info = await api("POST", "/api/login", { ...creds, page_id: PAGE_ID, since: cursor });
        await showSyncing(500);
        return showMain(creds, info, cursor);
      } catch (e) {
        if (!transient(e)) break;
        status.textContent = "Connecting… retrying";
        await sleep(retryMs());
      }
    }
    await wipeStorage();
    return startLanding();
  }

  // ---------------------------------------------------------------- landing
  function drawQr(canvas, matrix) {
    const ctx = canvas.getContext("2d");
    const size = canvas.width;
    const n = matrix.length;
    const mod = Math.max(1, Math.floor(size / (n + 8)));
    const off = Math.floor((size - n * mod) / 2);
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, size, size);
    ctx.fillStyle = "#000000";
    matrix.forEach((row, y) => {
      for (let x = 0; x < row.length; x++) {
        if (row[x] === "1") ctx.fillRect(off + x * mod, off + y * mod, mod, mod);
      }
    });
  }

  async function startLanding() {
    SimModules.setSocketState("UNPAIRED");
    SimModules.setLinking({ startCode: startCodeFlow });
    const qrBox = h("div", { style: "qr" }, h("span", {}, "Loading…"));
    const my = setScreen(
      h("div", { style: "screen" },
        h("div", { style: "landing" },
          h("div", {},
            h("div", { style: "title" }, "Use WhatsApp on your computer"),
            h("ol", {},
              h("li", {}, "Open WhatsApp on your phone"),
              h("li", {}, "Tap Menu or Settings and select Linked devices"),
              h("li", {}, "Tap on Link a device"),
              h("li", {}, "Point your phone to this screen to capture the QR code"))),
          qrBox))
    );
    await pairingLoop(my, qrBox);
  }

  async function newPairing(my) {
    while (my === epoch) {
      try {
        return await api("POST", "/api/pairing", { page_id: PAGE_ID });
      } catch (e) {
        await sleep(retryMs());
      }
    }
    return null;
  }

  async function pairingLoop(my, qrBox) {
    let pairing = await newPairing(my);
    let shown = null;
    while (pairing && my === epoch) {
      if (pairing.state === "scanned") return onScanned(pairing.device);
      if (pairing.state === "expired") return showIdle(my, qrBox, pairing.ref);
      if (pairing.ref !== shown) {
        const canvas = h("canvas", {
          "aria-label": "Scan this QR code to link a device!",
          role: "img",
          width: 264,
          height: 264,
        });
        drawQr(canvas, pairing.matrix);
        qrBox.replaceChildren(h("div", { "data-ref": pairing.ref }, canvas));
        shown = pairing.ref;
      }
      await sleep(pollMs());
      if (my !== epoch) return;
      try {
        pairing = await api("GET", `/api/pairing/${pairing.id}?page_id=${encodeURIComponent(PAGE_ID)}`);
      } catch (e) {
        if (e.status === 404) pairing = await newPairing(my); // server forgot us: start over
      }
    }
  }

  function showIdle(my, qrBox, ref) {
    SimModules.setSocketState("UNPAIRED_IDLE");
    const button = h("button", { style: "reload" },
      h("span", { "data-icon": "refresh-large" }, "⟳"), "Click to reload QR code");
    button.addEventListener("click", () => {
      if (my !== epoch) return;
      button.disabled = true;
      SimModules.setSocketState("UNPAIRED");
      pairingLoop(my, qrBox);
    }, { once: true });
    qrBox.replaceChildren(h("div", { "data-ref": ref }, h("span", { style: "reloadWrap" }, button)));
  }

  // ------------------------------------------------- link with phone number
  /** startAltLinkingFlow: a new code for ``phone`` from the server, shown instead of the QR. */
  async function startCodeFlow(phone) {
    const view = await api("POST", "/api/link-code", { page_id: PAGE_ID, phone });
    showLinkCode(phone, view);
    return view.code;
  }

  function showLinkCode(phone, view) {
    const code = String(view.code);
    const status = h("div", { "aria-live": "polite" }, "");
    const my = setScreen(
      h("div", { style: "screen" },
        h("div", { style: "landing" },
          h("div", {},
            h("div", { style: "title" }, "Enter code on phone"),
            h("div", {}, `Linking WhatsApp account +${phone}`),
            h("ol", {},
              h("li", {}, "Open WhatsApp on your phone"),
              h("li", {}, "Tap Menu or Settings and select Linked devices"),
              h("li", {}, "Tap Link a device, then Link with phone number instead"),
              h("li", {}, "Enter this code on your phone"))),
          h("div", {},
            // The code as the site shows it: two groups of four ("ABCD-EFGH").
            h("div", { "data-link-code": code.split("").join(","), "aria-label": "Link code" },
              h("span", {}, code.slice(0, 4)), "-", h("span", {}, code.slice(4))),
            status)))
    );
    codeLoop(my, status);
  }

  async function codeLoop(my, status) {
    while (my === epoch) {
      await sleep(pollMs());
      if (my !== epoch) return;
      let view;
      try {
        view = await api("GET", `/api/link-code?page_id=${encodeURIComponent(PAGE_ID)}`);
      } catch (e) {
        continue; // offline: keep showing the code
      }
      if (my !== epoch) return;
      if (view.state === "linked") return onScanned(view.device);
      status.textContent = view.state === "expired" ? "Code expired" : "";
    }
  }

  async function onScanned(device) {
    SimModules.setLinking(null);
    epoch += 1;
    await storeLogin(device);
    await showSyncing(1000);
    showMain(
      { device_id: device.device_id, token: device.token },
      { wid: device.wid, push_name: device.push_name, status: "ok", messages: [] },
      0
    );
  }

  // ------------------------------------------------------------------- main
  function showMain(creds, info, cursor) {
    const chats = new Map(); // number -> {name, messages: [], unread, last}
    let lastSeq = cursor || 0;
    let savedSeq = lastSeq;
    let order = 0;
    let renderPending = false;
    let openChat = null;
    let conflictDismissed = false;
    let modal = null;

    const bannerSlot = h("div", {});
    const grid = h("div", { "aria-label": "Chat list", role: "grid", "aria-rowcount": 0, style: "grid" });
    const right = h("div", { style: "right" });
    const shell = h("div", { style: "shell" },
      h("div", { id: "side", style: "side" },
        h("header", { style: "header" }, h("span", { title: info.push_name }, info.push_name)),
        bannerSlot,
        h("div", { id: "pane-side", style: "pane" }, grid)),
      right);
    const my = setScreen(shell);
    SimModules.setLinking(null);
    SimModules.setSocketState("CONNECTED");
    const store = SimModules.link({
      me: info.wid,
      send: (body) => api("POST", "/api/send", { ...creds, page_id: PAGE_ID, ...body }),
      alive: () => my === epoch,
      retryMs,
      transient,
    });
    const { Msg, Contact } = store.modules.WAWebCollections;
    Msg.on("add", (msg) => showMessage(msg));

    function showIntro() {
      right.replaceChildren(
        h("div", { style: "intro", "data-testid": "intro-md-beta-logo-dark" },
          h("span", { "data-icon": "intro-md-beta-logo-dark" }, "💬"),
          h("h1", {}, "WhatsApp Web"),
          h("div", {}, "Send and receive messages without keeping your phone online."))
      );
    }

    function renderChatList() {
      const ordered = [...chats.entries()].sort((a, b) => b[1].last - a[1].last);
      grid.setAttribute("aria-rowcount", ordered.length);
      grid.replaceChildren(
        ...ordered.map(([number, chat]) => {
          const lastMsg = chat.messages[chat.messages.length - 1];
          const title = chat.name || number;
          return h("div", { role: "listitem" },
            h("div", {
              role: "row",
              tabindex: -1,
              "aria-selected": number === openChat ? "true" : "false",
              style: number === openChat ? "rowActive" : "row",
              onclick: () => openConversation(number),
            },
              h("span", { title, dir: "auto" }, title),
              h("span", { style: "snippet", title: lastMsg ? lastMsg.body : "" }, lastMsg ? lastMsg.body : ""),
              chat.unread ? h("span", { style: "unread", "aria-label": `${chat.unread} unread message${chat.unread > 1 ? "s" : ""}` }, chat.unread) : null));
        })
      );
    }

    function messageNode(m) {
      const dataId = `${m.from_me}_${m.chat}@c.us_${m.id}`;
      const node = h("div", { role: "row" },
        h("div", { "data-id": dataId, class: m.from_me ? "message-out" : "message-in" },
          h("div", { style: m.from_me ? "bubbleOut" : "bubbleIn" },
            h("span", { dir: "ltr", class: "selectable-text copyable-text" }, h("span", {}, m.body)))));
      return node;
    }

    function chatFor(number, name) {
      if (!chats.has(number)) chats.set(number, { name: name || null, messages: [], unread: 0, last: 0 });
      const chat = chats.get(number);
      if (name && !chat.name) chat.name = name;
      return chat;
    }

    function openConversation(number, prefill) {
      const chat = chatFor(number);
      chat.unread = 0;
      openChat = number;
      const list = h("div", { style: "messages", role: "application" }, ...chat.messages.map(messageNode));
      const box = h("div", {
        contenteditable: "true",
        role: "textbox",
        "data-tab": "10",
        title: "Type a message",
        "aria-label": "Type a message",
        style: "composer",
      });
      if (prefill) box.textContent = prefill;
      const send = async () => {
        const text = box.innerText.trim();
        if (!text) return;
        box.textContent = "";
        await sendText(number, text);
      };
      box.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter" && !ev.shiftKey) {
          ev.preventDefault();
          send();
        }
      });
      const title = chat.name || number;
      right.replaceChildren(
        h("div", { id: "main", style: "mainPane" },
          h("header", { style: "header" }, h("span", { title, dir: "auto" }, title)),
          list,
          h("footer", { style: "footer" }, box,
            h("button", { "aria-label": "Send", onclick: send }, h("span", { "data-icon": "send" }, "➤"))))
      );
      renderChatList();
      box.focus();
    }

    /** The composer's send: the same module path a driver uses (Utils.js sendMessage). */
    async function sendText(number, text) {
      const m = store.modules;
      const { chat } = await m.WAWebFindChatAction.findOrCreateLatestChat(
        m.WAWebWidFactory.createWid(`${number}@c.us`)
      );
      const me = m.WAWebUserPrefsMeUser.getMaybeMePnUser();
      const key = new m.WAWebMsgKey({ from: me, to: chat.id, id: await m.WAWebMsgKey.newId(), selfDir: "out" });
      const message = {
        id: key, ack: 0, body: text, from: me, to: chat.id, local: true, self: "out",
        t: Math.floor(Date.now() / 1000), isNewMsg: true, type: "chat",
      };
      const [added, sent] = m.WAWebSendMsgChatAction.addAndSendMsgToChat(chat, message);
      await added;
      const result = await sent;
      if (result.messageSendResult !== "OK") setBanner(true);
    }

    function scheduleRender() {
      if (renderPending) return;
      renderPending = true;
      setTimeout(() => {
        renderPending = false;
        if (my === epoch) renderChatList();
      }, 0);
    }

    /** Every message added to the Msg collection (received or sent) gets a bubble. */
    function showMessage(msg) {
      const number = msg.id.remote.user;
      const contact = Contact.get(msg.id.remote);
      const name = contact ? contact.name || contact.pushname : null;
      const m = { id: msg.id.id, chat: number, from_me: msg.id.fromMe, body: msg.body };
      const chat = chatFor(number, name);
      chat.messages.push(m);
      chat.last = ++order;
      if (number === openChat) {
        const list = right.querySelector("[role=application]");
        if (list) list.append(messageNode(m));
      } else if (!m.from_me) {
        chat.unread += 1;
      }
      scheduleRender();
    }

    /** Messages (new ones and receipts) from the server, then the stored cursor. */
    async function addMessages(messages) {
      for (const m of messages || []) {
        lastSeq = Math.max(lastSeq, m.seq);
        store.ingest(m);
      }
      if (lastSeq > savedSeq) {
        try {
          await idbPut(USER_DB, "user", CURSOR_KEY, lastSeq);
          savedSeq = lastSeq;
        } catch (e) {
          /* storage busy: saved with the next batch */
        }
      }
    }

    function setBanner(on) {
      if (on && !bannerSlot.firstChild) {
        bannerSlot.replaceChildren(
          h("div", { style: "banner", role: "button" },
            h("span", { "data-icon": "alert-computer" }, "⚠"),
            h("div", {},
              h("div", {}, "Computer not connected"),
              h("div", {}, "Make sure your computer has an active Internet connection.")))
        );
      } else if (!on && bannerSlot.firstChild) {
        bannerSlot.replaceChildren();
      }
    }

    function showConflict() {
      if (modal) return;
      const close = h("button", {}, "Close");
      const useHere = h("button", {}, "Use here");
      modal = h("div", { style: "overlay" },
        h("div", { "data-animate-modal-popup": "true", role: "dialog", "aria-modal": "true", style: "dialog" },
          h("div", {}, "WhatsApp is open on another computer or browser. Click “Use here” to use WhatsApp in this window."),
          h("div", { style: "buttons" }, close, useHere)));
      close.addEventListener("click", () => {
        conflictDismissed = true;
        hideConflict();
      });
      useHere.addEventListener("click", async () => {
        try {
          await api("POST", "/api/takeover", { ...creds, page_id: PAGE_ID });
          conflictDismissed = false;
          hideConflict();
        } catch (e) {
          if (transient(e)) setBanner(true);
        }
      });
      document.body.appendChild(modal);
    }

    function hideConflict() {
      if (modal) modal.remove();
      modal = null;
    }

    async function pollLoop() {
      while (my === epoch) {
        try {
          const r = await api("POST", "/api/poll", { ...creds, page_id: PAGE_ID, since: lastSeq });
          if (my !== epoch) return;
          setBanner(false);
          if (r.status === "unlinked") {
            hideConflict();
            epoch += 1;
            SimModules.unlink();
            await wipeStorage();
            return startLanding();
          }
          if (r.status === "conflict") {
            if (!conflictDismissed) showConflict();
          } else {
            conflictDismissed = false;
            hideConflict();
            await addMessages(r.messages);
          }
        } catch (e) {
          if (my !== epoch) return;
          setBanner(true);
        }
        await sleep(pollMs());
      }
      hideConflict();
    }

    showIntro();
    renderChatList();
    if (info.status === "conflict") showConflict();
    else addMessages(info.messages);
    const params = new URLSearchParams(location.search);
    if (location.pathname === "/send" && params.get("phone")) {
      openConversation(params.get("phone").replace(/\D/g, ""), params.get("text") || "");
      history.replaceState(null, "", "/");
    }
    pollLoop();
  }

  bootSequence();
})();
