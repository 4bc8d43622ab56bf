// The console: sign-in, sessions list, session page. Data from the REST API only,
// live updates from the event stream (sse.js). The token lives in sessionStorage only.

import { Api, ApiError, enc } from "./api.js";
import { h, replace, svgElement } from "./dom.js";
import { LANGUAGES, pickLanguage, setLanguage, t } from "./i18n.js";
import { LiveFeed } from "./sse.js";

const TOKEN_KEY = "zaphub.token";
// Real WhatsApp Web: the first QR lives about 60 s, each next one about 20 s. Once two
// codes have been seen, the interval actually observed is used instead.
const FIRST_QR_SECONDS = 60;
const NEXT_QR_SECONDS = 20;

const root = document.getElementById("app");
const liveRegion = document.getElementById("announcer");

const app = {
  me: null,
  isAdmin: false,
  sessions: new Map(),
  feed: null,
  page: null,
  streamState: "connecting",
  loginError: null,
};

const api = new Api(() => sessionStorage.getItem(TOKEN_KEY) || "", () => signOut(t("login.invalid")));

// ---------------------------------------------------------------- helpers

function announce(text) {
  // Re-set even an identical text, so that screen readers read it again.
  liveRegion.textContent = "";
  requestAnimationFrame(() => {
    liveRegion.textContent = text;
  });
}

function errorText(error) {
  if (error instanceof ApiError) {
    if (error.status === 403) return t("error.forbidden");
    return t("error.generic", { message: error.message });
  }
  return t("error.network");
}

function statusLabel(status) {
  return t(`status.${status}`) === `status.${status}` ? status : t(`status.${status}`);
}

function statusBadge(status, attrs = {}) {
  return h("span", { class: `badge status-${String(status).toLowerCase()}`, ...attrs }, statusLabel(status));
}

function formatTime(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

function chatLabel(chatId) {
  return String(chatId || "").replace(/@c\.us$/, "");
}

function debounce(fn, ms) {
  const timers = new Map();
  return (key, ...args) => {
    clearTimeout(timers.get(key));
    timers.set(key, setTimeout(() => {
      timers.delete(key);
      fn(key, ...args);
    }, ms));
  };
}

async function run(action, doneText, errorBox) {
  try {
    const result = await action();
    if (doneText) announce(doneText);
    if (errorBox) errorBox.textContent = "";
    return result;
  } catch (error) {
    const text = errorText(error);
    if (errorBox) errorBox.textContent = text;
    announce(text);
    return undefined;
  }
}

function confirmDialog(title, text, confirmLabel) {
  return new Promise((resolve) => {
    const dialog = h(
      "dialog",
      { class: "confirm", "aria-labelledby": "confirm-title", "aria-describedby": "confirm-text" },
      h("h2", { id: "confirm-title" }, title),
      h("p", { id: "confirm-text" }, text),
      h(
        "form",
        { method: "dialog", class: "row" },
        h("button", { value: "cancel", type: "submit", autofocus: true }, t("action.cancel")),
        h("button", { value: "confirm", type: "submit", class: "danger" }, confirmLabel),
      ),
    );
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(dialog.returnValue === "confirm");
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

// ---------------------------------------------------------------- admin actions

const actions = {
  async create(name) {
    return api.post("/session", { name });
  },
  async restart(name) {
    return run(() => api.post(`/session/${enc(name)}/restart`), t("done.restart", { name }));
  },
  async setActive(name, active) {
    const done = await run(
      () => api.patch(`/session/${enc(name)}`, { is_active: active }),
      t(active ? "done.activate" : "done.deactivate", { name }),
    );
    if (done) storeSession(done);
  },
  async remove(name) {
    const yes = await confirmDialog(
      t("confirm.remove.title"),
      t("confirm.remove.text", { name }),
      t("action.remove"),
    );
    if (!yes) return;
    await run(() => api.delete(`/session/${enc(name)}`), t("done.remove", { name }));
    refreshSession(name);
  },
};

function adminButtons(session) {
  if (!app.isAdmin) return null;
  const name = session.name;
  return h(
    "div",
    { class: "row actions" },
    h("button", { type: "button", "data-action": "restart", onclick: () => actions.restart(name) }, t("action.restart")),
    session.is_active
      ? h("button", { type: "button", "data-action": "deactivate", onclick: () => actions.setActive(name, false) }, t("action.deactivate"))
      : h("button", { type: "button", "data-action": "activate", onclick: () => actions.setActive(name, true) }, t("action.activate")),
    h("button", { type: "button", class: "danger", "data-action": "remove", onclick: () => actions.remove(name) }, t("action.remove")),
  );
}

// ---------------------------------------------------------------- sessions state

function storeSession(session) {
  app.sessions.set(session.name, session);
  app.page?.onSession?.(session.name);
}

const refreshSession = debounce(async (name) => {
  try {
    storeSession(await api.get(`/session/${enc(name)}`));
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      app.sessions.delete(name);
      app.page?.onSession?.(name);
    }
  }
}, 100);

function handleEvent(event) {
  if (event.type === "session.status") {
    const known = app.sessions.get(event.session);
    if (known) {
      known.status = event.data.status;
      app.page?.onSession?.(event.session);
    }
    announce(t("announce.status", { name: event.session, status: statusLabel(event.data.status) }));
    refreshSession(event.session); // for the phone number, last error, worker
  } else if (event.type === "session.removed") {
    refreshSession(event.session);
  }
  app.page?.onEvent?.(event);
}

// ---------------------------------------------------------------- frame

function renderFrame() {
  const header = h(
    "header",
    { class: "top" },
    h("h1", {}, h("a", { href: "#/" }, t("app.title"))),
    app.me ? h("span", { class: "who", id: "whoami" }, t("whoami", { email: app.me.email, role: t(`role.${app.me.role}`) })) : null,
    app.me ? h("span", { class: `stream stream-${app.streamState}`, id: "stream-state" }, t(`stream.${app.streamState === "live" ? "live" : app.streamState}`)) : null,
    h(
      "label",
      { class: "lang" },
      h("span", {}, t("lang.label")),
      h(
        "select",
        { id: "lang", onchange: (e) => switchLanguage(e.target.value) },
        LANGUAGES.map(([code, label]) => {
          const option = h("option", { value: code, lang: code }, label);
          option.selected = code === document.documentElement.lang;
          return option;
        }),
      ),
    ),
    app.me ? h("button", { type: "button", id: "logout", onclick: () => signOut() }, t("logout")) : null,
  );
  const main = h("main", { id: "main", tabindex: "-1" });
  replace(root, h("a", { class: "skip", href: "#main", onclick: (e) => { e.preventDefault(); main.focus(); } }, t("skip")), header, main);
  document.title = t("app.title");
  return main;
}

function setStreamState(streamState) {
  app.streamState = streamState;
  const badge = document.getElementById("stream-state");
  if (badge) {
    badge.className = `stream stream-${streamState}`;
    badge.textContent = t(`stream.${streamState}`);
  }
}

function switchLanguage(lang) {
  setLanguage(lang, true);
  render();
  document.getElementById("lang")?.focus();
}

// ---------------------------------------------------------------- sign in / out

function renderLogin() {
  const main = renderFrame();
  const error = h("p", { class: "error", role: "alert", id: "login-error" }, app.loginError || "");
  const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", required: true, spellcheck: "false" });
  const form = h(
    "form",
    { class: "card login", "aria-labelledby": "login-title" },
    h("h2", { id: "login-title" }, t("login.title")),
    h("p", {}, t("login.help")),
    h("label", { for: "token" }, t("login.token")),
    input,
    h("button", { type: "submit", id: "login-submit" }, t("login.submit")),
    error,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    app.loginError = null;
    await start();
  });
  main.append(form);
  input.focus();
}

function signOut(message = null) {
  sessionStorage.removeItem(TOKEN_KEY);
  app.feed?.stop();
  app.feed = null;
  app.me = null;
  app.page?.dispose?.();
  app.page = null;
  app.loginError = message;
  renderLogin();
}

async function whoAmI() {
  try {
    return await api.get("/me");
  } catch (error) {
    if (!(error instanceof ApiError) || error.status === 401) throw error;
    // An older server without /me: an admin-only read tells the role.
    let role = "agent";
    try {
      await api.get("/webhooks");
      role = "admin";
    } catch {
      role = "agent";
    }
    return { email: "", role, company: "" };
  }
}

async function start() {
  if (!sessionStorage.getItem(TOKEN_KEY)) {
    renderLogin();
    return;
  }
  try {
    app.me = await whoAmI();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return; // signOut already ran
    app.loginError = errorText(error);
    renderLogin();
    return;
  }
  app.isAdmin = app.me.role === "admin";
  render();
  app.feed = new LiveFeed(api, {
    onEvent: handleEvent,
    onState: setStreamState,
    onResync: () => app.page?.load(),
  });
  app.feed.start();
}

// ---------------------------------------------------------------- routing

function route() {
  const match = /^#\/session\/([^/?]+)/.exec(location.hash);
  return match ? { page: "session", name: decodeURIComponent(match[1]) } : { page: "sessions" };
}

function render() {
  if (!app.me) {
    renderLogin();
    return;
  }
  app.page?.dispose?.();
  const main = renderFrame();
  const where = route();
  app.page = where.page === "session" ? sessionPage(where.name) : sessionsPage();
  main.append(app.page.el);
  app.page.load();
}

window.addEventListener("hashchange", () => {
  render();
  document.querySelector("main h2")?.focus();
});

// ---------------------------------------------------------------- sessions list

function sessionsPage() {
  const listBox = h("div", { id: "sessions" });
  const createError = h("p", { class: "error", role: "alert" });
  let createForm = null;
  if (app.isAdmin) {
    const input = h("input", {
      id: "new-session-name",
      name: "name",
      required: true,
      pattern: "[a-z0-9][a-z0-9_\\-]{0,63}",
      maxlength: "64",
      autocomplete: "off",
      "aria-describedby": "new-session-hint",
    });
    createForm = h(
      "form",
      { class: "card create", id: "create-session", "aria-labelledby": "create-title" },
      h("h3", { id: "create-title" }, t("create.title")),
      h("label", { for: "new-session-name" }, t("create.name")),
      h("div", { class: "row" }, input, h("button", { type: "submit" }, t("create.submit"))),
      h("p", { class: "hint", id: "new-session-hint" }, t("create.hint")),
      createError,
    );
    createForm.addEventListener("submit", async (e) => {
      e.preventDefault();
      const name = input.value.trim();
      const created = await run(() => actions.create(name), t("create.done", { name }), createError);
      if (created) {
        storeSession(created);
        location.hash = `#/session/${enc(name)}`;
      }
    });
  }
  const el = h(
    "section",
    { "aria-labelledby": "sessions-title" },
    h("h2", { id: "sessions-title", tabindex: "-1" }, t("sessions.title")),
    createForm,
    listBox,
  );

  function renderList() {
    const sessions = [...app.sessions.values()].sort((a, b) => a.name.localeCompare(b.name));
    if (!sessions.length) {
      replace(listBox, h("p", { class: "empty" }, t("sessions.empty")));
      return;
    }
    const head = h(
      "thead",
      {},
      h("tr", {}, ["sessions.name", "sessions.status", "sessions.phone", "sessions.worker", "sessions.actions"].map((k) => h("th", { scope: "col" }, t(k)))),
    );
    const rows = sessions.map((s) =>
      h(
        "tr",
        { "data-session": s.name },
        h("th", { scope: "row", "data-label": t("sessions.name") }, h("a", { href: `#/session/${enc(s.name)}` }, s.name)),
        h("td", { "data-label": t("sessions.status") }, statusBadge(s.status, { "data-status": s.status }), s.is_active ? null : h("span", { class: "muted" }, ` (${t("sessions.inactive")})`)),
        h("td", { "data-label": t("sessions.phone") }, s.phone_number || "—"),
        h("td", { "data-label": t("sessions.worker") }, s.worker_id || "—"),
        h("td", { "data-label": t("sessions.actions") }, adminButtons(s)),
      ),
    );
    replace(listBox, h("table", { class: "sessions" }, head, h("tbody", {}, rows)));
  }

  async function load() {
    try {
      const items = [];
      for (let page = 1; page <= 50; page += 1) {
        const body = await api.get(`/session?per_page=100&page=${page}`);
        items.push(...body.items);
        if (page >= body.pages) break;
      }
      app.sessions = new Map(items.map((s) => [s.name, s]));
      renderList();
    } catch (error) {
      replace(listBox, h("p", { class: "error", role: "alert" }, errorText(error)));
    }
  }

  return {
    el,
    load,
    onSession: () => renderList(),
    onEvent: (event) => {
      if (event.type.startsWith("session.") && !app.sessions.has(event.session)) refreshSession(event.session);
    },
  };
}

// ---------------------------------------------------------------- session page

function sessionPage(name) {
  const state = {
    details: null,
    timeline: [],
    chats: [],
    chat: null,
    thread: new Map(),
    linkMode: "qr",
    qr: { seq: 0, arrivedAt: null, lifetime: NEXT_QR_SECONDS, seen: 0, lastRotation: null },
    pairing: null,
    timer: null,
  };
  const titleId = "session-title";
  const summary = h("div", { class: "card summary", id: "session-summary" });
  const linkBox = h("section", { class: "card link", id: "link", "aria-labelledby": "link-title" });
  const timelineBox = h("section", { class: "card", id: "timeline", "aria-labelledby": "timeline-title" });
  const jobsBox = h("section", { class: "card", id: "jobs", "aria-labelledby": "jobs-title" });
  const chatsBox = h("section", { class: "card", id: "chats", "aria-labelledby": "chats-title" });
  const threadBox = h("section", { class: "card thread", id: "thread", "aria-labelledby": "thread-title" });
  const sendBox = sendForm();
  const el = h(
    "section",
    { class: "session-page", "aria-labelledby": titleId },
    h("p", {}, h("a", { href: "#/" }, `← ${t("action.back")}`)),
    h("h2", { id: titleId, tabindex: "-1" }, name),
    summary,
    linkBox,
    h("div", { class: "columns" }, h("div", {}, chatsBox), h("div", {}, threadBox, sendBox)),
    h("div", { class: "columns" }, timelineBox, jobsBox),
  );
  // The QR box lives across renders of the link section, so a rotation swaps only the image.
  const qrFigure = h("figure", { class: "qr", id: "qr" });
  const qrImage = h("div", { class: "qr-image", id: "qr-image", role: "img", "aria-label": t("link.qr.alt", { name }) });
  const qrCountdown = h("p", { class: "countdown", id: "qr-countdown" });
  qrFigure.append(qrImage, h("figcaption", {}, t("link.qr.help")), qrCountdown);
  const pairingBox = h("div", { id: "pairing" });
  const pairingError = h("p", { class: "error", role: "alert", id: "pairing-error" });
  const pairingCode = h("div", { id: "pairing-code", "aria-live": "polite" });
  let renderedLinkKey = null;

  const session = () => app.sessions.get(name);

  // -------- summary
  function renderSummary() {
    const s = session();
    if (!s) {
      replace(summary, h("p", { class: "error" }, t("session.notfound", { name })));
      return;
    }
    const owner = state.details?.owner;
    const ownerText = owner
      ? `${owner.id} (${t(state.details.owner_alive ? "session.owner_alive" : "session.owner_dead")})`
      : t("session.owner_none");
    replace(
      summary,
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, t("sessions.status")),
        h("dd", {}, statusBadge(s.status, { id: "session-status", "data-status": s.status }), s.is_active ? null : h("span", { class: "muted" }, ` (${t("sessions.inactive")})`)),
        h("dt", {}, t("session.phone")),
        h("dd", { id: "session-phone" }, s.phone_number || "—"),
        s.push_name ? [h("dt", {}, t("session.push_name")), h("dd", {}, s.push_name)] : null,
        h("dt", {}, t("session.owner")),
        h("dd", { id: "session-owner", "data-alive": String(Boolean(state.details?.owner_alive)) }, ownerText),
        s.last_error ? [h("dt", {}, t("session.last_error")), h("dd", { id: "session-error" }, s.last_error)] : null,
      ),
      adminButtons(s),
    );
  }

  // -------- linking: QR or phone number
  function qrExpired(s) {
    // The row's last_error, or else the reason of the last status change, says "qr timeout".
    const last = state.timeline[state.timeline.length - 1];
    const reason = s.last_error || (last?.data.status === s.status ? last.data.reason : "");
    return ["DISCONNECTED", "ERROR"].includes(s.status) && /qr/i.test(reason || "");
  }

  function renderLink() {
    const s = session();
    if (!s) {
      linkBox.hidden = true;
      return;
    }
    const key = `${s.status}|${qrExpired(s)}|${s.phone_number}|${state.linkMode}|${s.is_active}`;
    if (key === renderedLinkKey) return;
    renderedLinkKey = key;
    linkBox.hidden = false;
    if (s.status !== "QRCODE") replace(qrImage); // an old code must never be shown again
    const title = h("h3", { id: "link-title" }, t("link.title"));
    if (s.status === "CONNECTED") {
      state.pairing = null;
      replace(linkBox, title, h("p", { class: "connected", id: "link-connected" }, t("link.connected", { phone: s.phone_number || "—" })));
      return;
    }
    if (!app.isAdmin) {
      // Linking is for admins: an agent sees only that the session is not connected.
      linkBox.hidden = true;
      return;
    }
    const again = h("button", { type: "button", id: "start-again", onclick: () => startAgain() }, t("link.again"));
    if (s.status !== "QRCODE" && s.status !== "CONNECTING") {
      const text = qrExpired(s) ? t("link.qr.expired") : t("link.not_linked");
      replace(linkBox, title, h("p", { class: "notice", id: "link-expired", role: "status" }, text), again);
      return;
    }
    const toggle = h(
      "button",
      { type: "button", id: "link-mode", "aria-pressed": String(state.linkMode === "phone"), onclick: () => switchMode() },
      state.linkMode === "phone" ? t("link.use_qr") : t("link.use_phone"),
    );
    if (state.linkMode === "phone") {
      replace(linkBox, title, toggle, phoneForm(), pairingError, pairingCode);
      renderPairing();
      return;
    }
    replace(linkBox, title, toggle, qrFigure);
    if (s.status === "QRCODE" && !qrImage.firstChild) loadQr();
    if (s.status !== "QRCODE") {
      replace(qrImage);
      qrCountdown.textContent = t("link.qr.waiting");
    }
  }

  function switchMode() {
    state.linkMode = state.linkMode === "qr" ? "phone" : "qr";
    renderedLinkKey = null;
    renderLink();
    document.getElementById("link-mode")?.focus();
  }

  async function startAgain() {
    state.qr.seen = 0;
    state.qr.lastRotation = null;
    replace(qrImage);
    await actions.restart(name);
  }

  async function loadQr() {
    const seq = ++state.qr.seq;
    try {
      const markup = await api.get(`/session/${enc(name)}/qr?format=svg`, { as: "text", accept: "image/svg+xml" });
      if (seq !== state.qr.seq) return; // a newer code was asked for meanwhile
      const svg = svgElement(markup);
      replace(qrImage, svg);
      qrImage.dataset.seq = String(seq);
    } catch (error) {
      if (seq !== state.qr.seq) return;
      replace(qrImage);
      qrCountdown.textContent = error instanceof ApiError && (error.status === 404 || error.status === 409)
        ? t("link.qr.waiting")
        : errorText(error);
    }
  }

  function onQr() {
    const now = Date.now();
    const qr = state.qr;
    if (qr.arrivedAt && qr.seen > 0) qr.lastRotation = (now - qr.arrivedAt) / 1000;
    qr.seen += 1;
    qr.arrivedAt = now;
    // Estimated lifetime: what the last rotation took, else WhatsApp's usual durations.
    qr.lifetime = qr.lastRotation || (qr.seen === 1 ? FIRST_QR_SECONDS : NEXT_QR_SECONDS);
    if (state.linkMode === "qr") loadQr();
  }

  function tick() {
    const s = session();
    if (s?.status === "QRCODE" && state.linkMode === "qr") {
      if (!state.qr.arrivedAt) state.qr.arrivedAt = Date.now(); // loaded mid-life: a guess
      const left = Math.ceil(state.qr.lifetime - (Date.now() - state.qr.arrivedAt) / 1000);
      qrCountdown.textContent = left > 0 ? t("link.qr.rotates", { seconds: left }) : t("link.qr.rotating");
    }
    if (state.pairing) renderPairingCountdown();
  }

  // -------- pairing code
  function phoneForm() {
    const input = h("input", {
      id: "pairing-phone",
      name: "phone",
      inputmode: "numeric",
      autocomplete: "tel",
      required: true,
      "aria-describedby": "pairing-hint",
    });
    const form = h(
      "form",
      { class: "phone-form", id: "pairing-form" },
      h("label", { for: "pairing-phone" }, t("link.phone.label")),
      h("div", { class: "row" }, input, h("button", { type: "submit" }, t("link.phone.submit"))),
      h("p", { class: "hint", id: "pairing-hint" }, t("link.phone.hint")),
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const digits = input.value.replace(/\D/g, "");
      // The API checks it too; this only spares a round trip for an obvious typo.
      if (digits.length < 8 || digits.length > 15) {
        failPairing(t("link.phone.hint"));
        input.focus();
        return;
      }
      requestPairing(digits);
    });
    return form;
  }

  async function requestPairing(phone) {
    pairingError.textContent = "";
    replace(pairingCode, h("p", {}, t("link.phone.pending")));
    try {
      const response = await fetch(`/session/${enc(name)}/pairing-code`, {
        method: "POST",
        headers: api.headers({ "Content-Type": "application/json" }),
        body: JSON.stringify({ phone }),
        cache: "no-store",
      });
      const body = await response.json().catch(() => null);
      if (response.status === 200) showPairing(body);
      else if (response.status === 202) followPairingJob(body?.job?.id || body?.id);
      else if (response.status === 404 || response.status === 405) failPairing(t("link.phone.unavailable"));
      else if (response.status === 401) api.onUnauthorized();
      else failPairing(response.status === 403 ? t("error.forbidden") : body?.message || `HTTP ${response.status}`);
    } catch {
      failPairing(t("error.network"));
    }
  }

  function failPairing(text) {
    replace(pairingCode);
    pairingError.textContent = text;
    announce(text);
  }

  async function followPairingJob(jobId) {
    // The code usually arrives as a session.pairing_code event; the job is the fallback.
    for (let i = 0; jobId && i < 60 && !state.pairing; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      try {
        const job = await api.get(`/jobs/${enc(jobId)}`);
        if (job.status === "succeeded" && job.result?.code) return showPairing(job.result);
        if (job.status === "failed") return failPairing(job.error || t("error.generic", { message: "" }));
        if (job.status === "succeeded") return undefined;
      } catch {
        return undefined;
      }
    }
    return undefined;
  }

  function formatCode(code) {
    const clean = String(code || "").toUpperCase();
    return clean.length === 8 && !clean.includes("-") ? `${clean.slice(0, 4)}-${clean.slice(4)}` : clean;
  }

  function showPairing(data) {
    if (!data?.code) return;
    state.pairing = { code: data.code, phone: data.phone, expiresAt: data.expires_at ? Date.parse(data.expires_at) : null };
    pairingError.textContent = "";
    renderPairing();
    announce(`${t("link.phone.code")}: ${formatCode(data.code)}`);
  }

  function renderPairing() {
    if (!state.pairing) return;
    replace(
      pairingCode,
      h("p", { class: "hint" }, t("link.phone.help")),
      h("p", { class: "pairing-code", id: "pairing-code-text", "aria-label": `${t("link.phone.code")} ${formatCode(state.pairing.code).split("").join(" ")}` }, formatCode(state.pairing.code)),
      h("p", { class: "countdown", id: "pairing-countdown" }),
    );
    renderPairingCountdown();
  }

  function renderPairingCountdown() {
    const box = document.getElementById("pairing-countdown");
    if (!box || !state.pairing?.expiresAt) return;
    const left = Math.ceil((state.pairing.expiresAt - Date.now()) / 1000);
    box.textContent = left > 0 ? t("link.phone.expires", { seconds: left }) : t("link.phone.expired");
  }

  // -------- timeline and jobs
  function renderTimeline() {
    const items = state.timeline.slice(-20).reverse();
    replace(
      timelineBox,
      h("h3", { id: "timeline-title" }, t("timeline.title")),
      items.length
        ? h(
            "ol",
            { class: "timeline", reversed: true },
            items.map((event) =>
              h(
                "li",
                {},
                h("time", { datetime: event.time || "" }, formatTime(event.time)),
                " ",
                event.data.old_status ? [statusBadge(event.data.old_status), " → "] : null,
                statusBadge(event.data.status),
                event.data.reason ? h("span", { class: "muted" }, ` ${event.data.reason}`) : null,
              ),
            ),
          )
        : h("p", { class: "empty" }, t("timeline.empty")),
    );
  }

  async function loadTimeline() {
    const events = [];
    let after = null;
    for (let page = 0; page < 10; page += 1) {
      const query = `?session=${enc(name)}&type=session.status&limit=1000${after ? `&after=${enc(after)}` : ""}`;
      const body = await api.get(`/events${query}`);
      events.push(...body.items.map((raw) => ({ id: raw.id, time: raw.created_at, data: raw.payload || {} })));
      if (!body.next_after) break;
      after = body.next_after;
    }
    state.timeline = events.slice(-50);
    renderTimeline();
    renderLink();
  }

  function renderJobs() {
    const jobs = state.details?.jobs || [];
    replace(
      jobsBox,
      h("h3", { id: "jobs-title" }, t("jobs.title")),
      jobs.length
        ? h(
            "table",
            { class: "jobs" },
            h("thead", {}, h("tr", {}, ["jobs.kind", "jobs.status", "jobs.created", "jobs.error"].map((k) => h("th", { scope: "col" }, t(k))))),
            h(
              "tbody",
              {},
              jobs.slice(0, 15).map((job) =>
                h(
                  "tr",
                  {},
                  h("td", { "data-label": t("jobs.kind") }, job.kind),
                  h("td", { "data-label": t("jobs.status") }, h("span", { class: `badge job-${job.status}` }, job.status)),
                  h("td", { "data-label": t("jobs.created") }, formatTime(job.created_at)),
                  h("td", { "data-label": t("jobs.error") }, job.error || ""),
                ),
              ),
            ),
          )
        : h("p", { class: "empty" }, t("jobs.empty")),
    );
  }

  async function loadDetails() {
    try {
      state.details = await api.get(`/session/${enc(name)}/details`);
      app.sessions.set(name, state.details.session);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) app.sessions.delete(name);
    }
    renderSummary();
    renderJobs();
    renderLink();
  }
  const refreshDetails = debounce(() => loadDetails(), 300);

  // -------- chats, thread, send
  function renderChats() {
    const list = state.chats.map((chat) => {
      const who = chat.contact?.name || chat.contact?.push_name || chatLabel(chat.chat_id);
      return h(
        "li",
        {},
        h(
          "button",
          {
            type: "button",
            class: "chat",
            "data-chat": chat.chat_id,
            "aria-current": chat.chat_id === state.chat ? "true" : null,
            onclick: () => openChat(chat.chat_id),
          },
          h("strong", {}, who),
          chat.unread_count ? h("span", { class: "badge unread" }, t("chats.unread", { count: chat.unread_count })) : null,
          h("span", { class: "preview" }, chat.last_message?.body || ""),
        ),
      );
    });
    replace(
      chatsBox,
      h("h3", { id: "chats-title" }, t("chats.title")),
      list.length ? h("ul", { class: "chats" }, list) : h("p", { class: "empty" }, t("chats.empty")),
    );
  }

  async function loadChats() {
    try {
      state.chats = (await api.get(`/session/${enc(name)}/chats?per_page=50`)).items;
    } catch {
      state.chats = [];
    }
    renderChats();
  }
  const refreshChats = debounce(() => loadChats(), 300);

  function renderThread() {
    const title = h("h3", { id: "thread-title" }, state.chat ? t("thread.title", { chat: chatLabel(state.chat) }) : t("thread.heading"));
    if (!state.chat) {
      replace(threadBox, title, h("p", { class: "empty" }, t("thread.none")));
      return;
    }
    const messages = [...state.thread.values()].sort((a, b) => String(a.created_at || "").localeCompare(String(b.created_at || "")));
    replace(
      threadBox,
      title,
      messages.length
        ? h(
            "ol",
            { class: "messages", id: "messages" },
            messages.map((m) =>
              h(
                "li",
                { class: `message ${m.direction}`, "data-message": m.id },
                h("span", { class: "visually-hidden" }, `${t(m.direction === "in" ? "msg.in" : "msg.out")}: `),
                h("span", { class: "body" }, m.body),
                h("span", { class: "meta" }, formatTime(m.created_at), m.direction === "out" ? ` · ${m.ack}` : ""),
              ),
            ),
          )
        : h("p", { class: "empty" }, t("thread.empty")),
    );
    const list = document.getElementById("messages");
    if (list) list.scrollTop = list.scrollHeight;
  }

  async function openChat(chatId) {
    state.chat = chatId;
    state.thread = new Map();
    const to = document.getElementById("send-to");
    if (to) to.value = chatLabel(chatId);
    renderChats();
    renderThread();
    try {
      const body = await api.get(`/session/${enc(name)}/messages?chat=${enc(chatId)}&limit=50`);
      if (state.chat !== chatId) return;
      for (const m of body.items) state.thread.set(m.id, m);
    } catch (error) {
      announce(errorText(error));
    }
    renderThread();
  }

  function sendForm() {
    const error = h("p", { class: "error", role: "alert", id: "send-error" });
    const to = h("input", { id: "send-to", name: "to", required: true, autocomplete: "off", inputmode: "tel" });
    const text = h("textarea", { id: "send-text", name: "text", required: true, rows: "3", maxlength: "65536" });
    const form = h(
      "form",
      { class: "card send", id: "send-form", "aria-labelledby": "send-title" },
      h("h3", { id: "send-title" }, t("send.title")),
      h("label", { for: "send-to" }, t("send.to")),
      to,
      h("label", { for: "send-text" }, t("send.text")),
      text,
      h("button", { type: "submit" }, t("send.submit")),
      error,
    );
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const sent = await run(
        () => api.post(`/session/${enc(name)}/messages`, { to: to.value.trim(), text: text.value }),
        t("send.done"),
        error,
      );
      if (!sent) return;
      text.value = "";
      const message = sent.message;
      if (message.chat_id !== state.chat) await openChat(message.chat_id);
      else {
        state.thread.set(message.id, message);
        renderThread();
      }
      refreshChats("chats");
    });
    return form;
  }

  // -------- lifecycle
  async function load() {
    renderSummary();
    renderLink();
    renderThread();
    await Promise.all([loadDetails(), loadTimeline().catch(() => renderTimeline()), loadChats()]);
    if (state.chat) await openChat(state.chat);
  }

  function onEvent(event) {
    if (event.session !== name) return;
    if (event.type === "session.status") {
      state.timeline.push({ id: event.id, time: event.time, data: event.data });
      renderTimeline();
      renderLink();
      if (event.data.status === "QRCODE") state.qr.seen = 0;
      refreshDetails("details");
    } else if (event.type === "session.qr") {
      onQr();
    } else if (event.type === "session.pairing_code") {
      showPairing(event.data);
    } else if (event.type.startsWith("message.")) {
      const message = event.data.message;
      if (message && message.chat_id === state.chat) {
        state.thread.set(message.id, { ...state.thread.get(message.id), ...message });
        renderThread();
      }
      refreshChats("chats");
    }
  }

  function onSession(changed) {
    if (changed !== name) return;
    renderSummary();
    renderLink();
  }

  state.timer = setInterval(tick, 1000);
  return {
    el,
    load,
    onEvent,
    onSession,
    dispose: () => clearInterval(state.timer),
  };
}

// ---------------------------------------------------------------- boot

setLanguage(pickLanguage());
start();
