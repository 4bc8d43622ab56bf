// The session page's linking panel: the rotating QR code with its countdown, or the
// phone-number form and the pairing code it yields; for admins only, until connected.

import { ApiError, enc } from "./api.js";
import { actions } from "./admin_actions.js";
import { h, replace, svgElement } from "./dom.js";
import { announce, errorText } from "./feedback.js";
import { t } from "./i18n.js";
import { api, app } from "./state.js";

// Real WhatsApp Web: the first QR lives about 60 s, each next one about 20 s. Once two
// codes have been seen, the interval actually observed is used instead.
const FIRST_QR_SECONDS = 60;
const NEXT_QR_SECONDS = 20;

/** ``lastStatus`` gives the latest status-change event (its reason may say "qr timeout"). */
export function linkPanel(name, { lastStatus }) {
  const state = {
    linkMode: "qr",
    qr: { seq: 0, arrivedAt: null, lifetime: NEXT_QR_SECONDS, seen: 0, lastRotation: null },
    pairing: null,
  };
  const linkBox = h("section", { class: "card link", id: "link", "aria-labelledby": "link-title" });
  // The QR box lives across renders of the link section, so a rotation swaps only the image.
  const qrFigure = h("figure", { class: "qr", id: "qr" });
  const qrImage = h("div", { class: "qr-image", id: "qr-image", role: "img", "aria-label": t("link.qr.alt", { name }) });
  const qrCountdown = h("p", { class: "countdown", id: "qr-countdown" });
  qrFigure.append(qrImage, h("figcaption", {}, t("link.qr.help")), qrCountdown);
  const pairingError = h("p", { class: "error", role: "alert", id: "pairing-error" });
  const pairingCode = h("div", { id: "pairing-code", "aria-live": "polite" });
  let renderedLinkKey = null;

  const session = () => app.sessions.get(name);

  // -------- QR
  function qrExpired(s) {
    // The row's last_error, or else the reason of the last status change, says "qr timeout".
    const last = lastStatus();
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

  const timer = setInterval(tick, 1000);
  return {
    el: linkBox,
    render: renderLink,
    /** A new QRCODE status: the next code is a first one again. */
    restartQrCount: () => {
      state.qr.seen = 0;
    },
    onQr,
    onPairingCode: showPairing,
    dispose: () => clearInterval(timer),
  };
}
