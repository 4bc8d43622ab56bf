// What an admin can do to a session (restart, (de)activate, remove, create) and the
// row of buttons for it, shared by the sessions list and the session page.

import { enc } from "./api.js";
import { h } from "./dom.js";
import { confirmDialog, run } from "./feedback.js";
import { t } from "./i18n.js";
import { api, app, refreshSession, storeSession } from "./state.js";

export const actions = {
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

export function adminButtons(session) {
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
