// Live events: /events/stream read with fetch() (EventSource cannot send Authorization),
// parsed as Server-Sent Events, resumed with Last-Event-ID after a drop. When streaming
// keeps failing, the feed falls back to polling GET /events?after= and retries the stream
// now and then.

/** Splits a text/event-stream into messages; ``onMessage({id, event, data})`` per message. */
export class SseParser {
  constructor(onMessage, onRetry = () => {}) {
    this.onMessage = onMessage;
    this.onRetry = onRetry;
    this.buffer = "";
    this.reset();
  }

  reset() {
    this.data = [];
    this.event = "";
    this.id = null;
  }

  push(chunk) {
    this.buffer += chunk;
    // Lines end with \r\n, \n or \r; the last piece may be incomplete, so it waits.
    const lines = this.buffer.split(/\r\n|\n|\r/);
    this.buffer = lines.pop();
    // A lone \r at the very end might be half of \r\n: keep the rule simple and exact.
    for (const line of lines) this.line(line);
  }

  line(line) {
    if (line === "") {
      if (this.data.length) {
        this.onMessage({ id: this.id, event: this.event || "message", data: this.data.join("\n") });
      }
      this.reset();
      return;
    }
    if (line.startsWith(":")) return; // a comment: ": heartbeat", ": connected"
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
    else if (field === "id" && !value.includes("\0")) this.id = value;
    else if (field === "retry" && /^\d+$/.test(value)) this.onRetry(Number(value));
  }
}

/** The feed's and the stream's shapes as one: {id, type, time, session, data}. */
export function normalizeEvent(raw) {
  const session = raw.session && typeof raw.session === "object" ? raw.session.name : raw.session;
  return {
    id: raw.id,
    type: raw.type,
    time: raw.timestamp || raw.created_at,
    session,
    seq: raw.seq,
    data: raw.data ?? raw.payload ?? {},
  };
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });

export class LiveFeed {
  /**
   * ``onEvent(event)`` for each event, ``onState("connecting"|"live"|"polling")``,
   * ``onResync()`` when the feed (re)starts without knowing where it left off: reload views.
   */
  constructor(api, { onEvent, onState, onResync, pollMs = 4000 }) {
    this.api = api;
    this.onEvent = onEvent;
    this.onState = onState;
    this.onResync = onResync;
    this.pollMs = pollMs;
    this.lastEventId = null;
    this.retryMs = 2000;
    this.controller = new AbortController();
    this.seen = new Set();
  }

  start() {
    this.run();
  }

  stop() {
    this.controller.abort();
  }

  deliver(raw) {
    if (!raw || this.seen.has(raw.id)) return;
    this.seen.add(raw.id);
    if (this.seen.size > 2000) this.seen = new Set([...this.seen].slice(-1000));
    this.lastEventId = raw.id;
    this.onEvent(normalizeEvent(raw));
  }

  async run() {
    const signal = this.controller.signal;
    let failures = 0;
    while (!signal.aborted) {
      this.onState("connecting");
      const outcome = await this.streamOnce(signal);
      if (signal.aborted) return;
      if (outcome === "opened") failures = 0;
      else failures += 1;
      if (failures >= 3) {
        // Streaming does not work here (a proxy that buffers, an old browser): poll for a while.
        await this.pollFor(signal, 30000);
        failures = 1;
        continue;
      }
      await sleep(Math.min(this.retryMs * 2 ** Math.max(failures - 1, 0), 30000), signal);
    }
  }

  /** One stream: "opened" if it connected (and later ended or dropped), else "failed". */
  async streamOnce(signal) {
    const headers = this.api.headers({ Accept: "text/event-stream" });
    if (this.lastEventId) headers["Last-Event-ID"] = this.lastEventId;
    let response;
    try {
      response = await fetch("/events/stream", { headers, signal, cache: "no-store" });
    } catch {
      return "failed";
    }
    if (response.status === 401) {
      this.api.onUnauthorized();
      this.controller.abort();
      return "failed";
    }
    const type = response.headers.get("Content-Type") || "";
    if (!response.ok || !response.body || !type.startsWith("text/event-stream")) return "failed";
    this.onState("live");
    // Without a resume point the stream starts with the next event: whatever the views
    // hold may be older than that, so they reload now (after the stream's start is fixed).
    if (!this.lastEventId) this.onResync();
    const parser = new SseParser(
      (message) => {
        try {
          this.deliver(JSON.parse(message.data));
        } catch (error) {
          console.warn("unreadable event", error);
        }
      },
      (ms) => {
        this.retryMs = ms;
      },
    );
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.push(value);
      }
    } catch {
      // A dropped connection: the loop reconnects with Last-Event-ID.
    }
    return "opened";
  }

  async pollFor(signal, durationMs) {
    this.onState("polling");
    const until = Date.now() + durationMs;
    if (!this.lastEventId) this.onResync();
    while (!signal.aborted && Date.now() < until) {
      try {
        await this.pollOnce();
      } catch {
        // The server is away: try again at the next tick.
      }
      await sleep(this.pollMs, signal);
    }
  }

  async pollOnce() {
    // Page until the end: the feed lists oldest first after ``after``.
    // With no resume point, the past is skipped: the views were just reloaded.
    const catchingUp = !this.lastEventId;
    for (let page = 0; page < 20; page += 1) {
      const query = this.lastEventId ? `?after=${encodeURIComponent(this.lastEventId)}&limit=500` : "?limit=500";
      const body = await this.api.get(`/events${query}`);
      for (const item of body.items) {
        if (catchingUp) this.lastEventId = item.id;
        else this.deliver(item);
      }
      if (!body.next_after) return;
    }
  }
}
