// The page frame around every view: skip link, header (title, who is signed in, the
// live-stream badge, language picker, sign-out button) and the empty <main>.

import { h, replace } from "./dom.js";
import { LANGUAGES, t } from "./i18n.js";
import { app } from "./state.js";

const root = document.getElementById("app");

/** Draws the frame and returns its <main>; the callbacks come from app.js (the router). */
export function renderFrame({ onLanguage, onSignOut }) {
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
        { id: "lang", onchange: (e) => onLanguage(e.target.value) },
        LANGUAGES.map(([code, label]) => {
          const option = h("option", { value: code, lang: code }, label);
          option.selected = code === document.documentElement.lang;
          return option;
        }),
      ),
    ),
    app.me ? h("button", { type: "button", id: "logout", onclick: () => onSignOut() }, t("logout")) : null,
  );
  const main = h("main", { id: "main", tabindex: "-1" });
  replace(root, h("a", { class: "skip", href: "#main", onclick: (e) => { e.preventDefault(); main.focus(); } }, t("skip")), header, main);
  document.title = t("app.title");
  return main;
}

export function setStreamState(streamState) {
  app.streamState = streamState;
  const badge = document.getElementById("stream-state");
  if (badge) {
    badge.className = `stream stream-${streamState}`;
    badge.textContent = t(`stream.${streamState}`);
  }
}
