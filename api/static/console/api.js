// The REST client: every call carries the bearer token; errors become ApiError.

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export class Api {
  constructor(getToken, onUnauthorized) {
    this.getToken = getToken;
    this.onUnauthorized = onUnauthorized;
  }

  headers(extra = {}) {
    return { Authorization: `Bearer ${this.getToken()}`, ...extra };
  }

  /** ``as``: "json" (default) or "text" (an SVG, say). */
  async request(method, path, { json, as = "json", accept } = {}) {
    const headers = this.headers(accept ? { Accept: accept } : {});
    const init = { method, headers, cache: "no-store" };
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(json);
    }
    const response = await fetch(path, init);
    if (response.status === 401) this.onUnauthorized();
    if (!response.ok) {
      let body = null;
      try {
        body = await response.json();
      } catch {
        body = null;
      }
      throw new ApiError(response.status, body);
    }
    if (response.status === 204) return null;
    return as === "text" ? response.text() : response.json();
  }

  get(path, options) {
    return this.request("GET", path, options);
  }
  post(path, json) {
    return this.request("POST", path, { json });
  }
  patch(path, json) {
    return this.request("PATCH", path, { json });
  }
  delete(path) {
    return this.request("DELETE", path);
  }
}

export const enc = encodeURIComponent;
