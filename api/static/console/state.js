// State shared by every page: who is signed in, the known sessions, the current page,
// and the one REST client. Keeping the sessions map here lets the list, the session
// page and the event stream all see the same rows.

import { Api, ApiError, enc } from "./api.js";
import { debounce } from "./debounce.js";

export const TOKEN_KEY = "zaphub.token";

export const app = {
  me: null,
  isAdmin: false,
  sessions: new Map(),
  feed: null,
  page: null,
  streamState: "connecting",
  loginError: null,
};

// A rejected token signs the user out, which re-renders the page; app.js sets the
// handler so that this module need not import the pages.
let unauthorized = () => {};

export function whenUnauthorized(handler) {
  unauthorized = handler;
}

export const api = new Api(() => sessionStorage.getItem(TOKEN_KEY) || "", () => unauthorized());

export function storeSession(session) {
  app.sessions.set(session.name, session);
  app.page?.onSession?.(session.name);
}

export const refreshSession = debounce(async (name) => {
  try {
    storeSession(await api.get(`/session/${enc(name)}`));
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      app.sessions.delete(name);
      app.page?.onSession?.(name);
    }
  }
}, 100);
