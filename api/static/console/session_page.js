// One session's page: the summary (status, phone, owner worker, admin buttons) and
// the details it loads, laid out with the linking, chat, timeline and jobs panels;
// it hands each live event of this session to the panel it concerns.

import { ApiError, enc } from "./api.js";
import { adminButtons } from "./admin_actions.js";
import { chatPanel } from "./chat.js";
import { debounce } from "./debounce.js";
import { h, replace } from "./dom.js";
import { statusBadge } from "./format.js";
import { t } from "./i18n.js";
import { jobsPanel } from "./jobs.js";
import { linkPanel } from "./linking.js";
import { api, app } from "./state.js";
import { timelinePanel } from "./timeline.js";

export function sessionPage(name) {
  let details = null;
  const titleId = "session-title";
  const summary = h("div", { class: "card summary", id: "session-summary" });
  const timeline = timelinePanel(name);
  const jobs = jobsPanel();
  const chat = chatPanel(name);
  const link = linkPanel(name, { lastStatus: timeline.last });
  const el = h(
    "section",
    { class: "session-page", "aria-labelledby": titleId },
    h("p", {}, h("a", { href: "#/" }, `← ${t("action.back")}`)),
    h("h2", { id: titleId, tabindex: "-1" }, name),
    summary,
    link.el,
    chat.el,
    h("div", { class: "columns" }, timeline.el, jobs.el),
  );

  const session = () => app.sessions.get(name);

  function renderSummary() {
    const s = session();
    if (!s) {
      replace(summary, h("p", { class: "error" }, t("session.notfound", { name })));
      return;
    }
    const owner = details?.owner;
    const ownerText = owner
      ? `${owner.id} (${t(details.owner_alive ? "session.owner_alive" : "session.owner_dead")})`
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
        h("dd", { id: "session-owner", "data-alive": String(Boolean(details?.owner_alive)) }, ownerText),
        s.last_error ? [h("dt", {}, t("session.last_error")), h("dd", { id: "session-error" }, s.last_error)] : null,
      ),
      adminButtons(s),
    );
  }

  async function loadDetails() {
    try {
      details = await api.get(`/session/${enc(name)}/details`);
      app.sessions.set(name, details.session);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) app.sessions.delete(name);
    }
    renderSummary();
    jobs.render(details?.jobs || []);
    link.render();
  }
  const refreshDetails = debounce(() => loadDetails(), 300);

  async function load() {
    renderSummary();
    link.render();
    chat.renderThread();
    await Promise.all([
      loadDetails(),
      // The timeline's reasons can tell the linking panel that the QR code expired.
      timeline.load().then(() => link.render()).catch(() => timeline.render()),
      chat.loadChats(),
    ]);
    await chat.reopen();
  }

  function onEvent(event) {
    if (event.session !== name) return;
    if (event.type === "session.status") {
      timeline.push(event);
      timeline.render();
      link.render();
      if (event.data.status === "QRCODE") link.restartQrCount();
      refreshDetails("details");
    } else if (event.type === "session.qr") {
      link.onQr();
    } else if (event.type === "session.pairing_code") {
      link.onPairingCode(event.data);
    } else if (event.type.startsWith("message.")) {
      chat.onMessageEvent(event);
    }
  }

  function onSession(changed) {
    if (changed !== name) return;
    renderSummary();
    link.render();
  }

  return {
    el,
    load,
    onEvent,
    onSession,
    dispose: link.dispose,
  };
}
