// Signing in: the token form, and asking the server whose token it is.

import { ApiError } from "./api.js";
import { h } from "./dom.js";
import { t } from "./i18n.js";
import { api, app, TOKEN_KEY } from "./state.js";

/** Fills ``main`` with the token form; ``onSignIn`` runs once the token is stored. */
export function renderLogin(main, onSignIn) {
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
    await onSignIn();
  });
  main.append(form);
  input.focus();
}

export async function whoAmI() {
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
