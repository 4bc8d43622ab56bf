// The console's entry point and router: sign-in and sign-out, picking the page from the
// URL hash, and handing live events to it. Data comes from the REST API only, live
// updates from the event stream (sse.js). The token lives in sessionStorage only.

import { ApiError } from "./api.js";
import { announce, errorText } from "./feedback.js";
import { statusLabel } from "./format.js";
import { renderFrame, setStreamState } from "./frame.js";
import { pickLanguage, setLanguage, t } from "./i18n.js";
import { renderLogin, whoAmI } from "./login.js";
import { sessionPage } from "./session_page.js";
import { sessionsPage } from "./sessions_list.js";
import { LiveFeed } from "./sse.js";
import { api, app, refreshSession, TOKEN_KEY, whenUnauthorized } from "./state.js";

whenUnauthorized(() => signOut(t("login.invalid")));

// ---------------------------------------------------------------- live events

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

function frame() {
  return renderFrame({ onLanguage: switchLanguage, onSignOut: () => signOut() });
}

function switchLanguage(lang) {
  setLanguage(lang, true);
  render();
  document.getElementById("lang")?.focus();
}

// ---------------------------------------------------------------- sign in / out

function showLogin() {
  renderLogin(frame(), start);
}

function signOut(message = null) {
  sessionStorage.removeItem(TOKEN_KEY);
  app.feed?.stop();
  app.feed = null;
  app.me = null;
  app.page?.dispose?.();
  app.page = null;
  app.loginError = message;
  showLogin();
}

async function start() {
  if (!sessionStorage.getItem(TOKEN_KEY)) {
    showLogin();
    return;
  }
  try {
    app.me = await whoAmI();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return; // signOut already ran
    app.loginError = errorText(error);
    showLogin();
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
    showLogin();
    return;
  }
  app.page?.dispose?.();
  const main = frame();
  const where = route();
  app.page = where.page === "session" ? sessionPage(where.name) : sessionsPage();
  main.append(app.page.el);
  app.page.load();
}

window.addEventListener("hashchange", () => {
  render();
  document.querySelector("main h2")?.focus();
});

// ---------------------------------------------------------------- boot

setLanguage(pickLanguage());
start();
