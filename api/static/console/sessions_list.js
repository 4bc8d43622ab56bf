// The sessions list page: every session of the company as a table, and for admins
// the form that creates a new one.

import { enc } from "./api.js";
import { actions, adminButtons } from "./admin_actions.js";
import { h, replace } from "./dom.js";
import { errorText, run } from "./feedback.js";
import { statusBadge } from "./format.js";
import { t } from "./i18n.js";
import { api, app, refreshSession, storeSession } from "./state.js";

export function sessionsPage() {
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
