// The session page's status timeline: the last status changes, newest first, loaded
// from the event log and extended by live events.

import { enc } from "./api.js";
import { h, replace } from "./dom.js";
import { formatTime, statusBadge } from "./format.js";
import { t } from "./i18n.js";
import { api } from "./state.js";

export function timelinePanel(name) {
  let events = [];
  const el = h("section", { class: "card", id: "timeline", "aria-labelledby": "timeline-title" });

  function render() {
    const items = events.slice(-20).reverse();
    replace(
      el,
      h("h3", { id: "timeline-title" }, t("timeline.title")),
      items.length
        ? h(
            "ol",
            { class: "timeline", reversed: true },
            items.map((event) =>
              h(
                "li",
                {},
                h("time", { datetime: event.time || "" }, formatTime(event.time)),
                " ",
                event.data.old_status ? [statusBadge(event.data.old_status), " → "] : null,
                statusBadge(event.data.status),
                event.data.reason ? h("span", { class: "muted" }, ` ${event.data.reason}`) : null,
              ),
            ),
          )
        : h("p", { class: "empty" }, t("timeline.empty")),
    );
  }

  async function load() {
    const loaded = [];
    let after = null;
    for (let page = 0; page < 10; page += 1) {
      const query = `?session=${enc(name)}&type=session.status&limit=1000${after ? `&after=${enc(after)}` : ""}`;
      const body = await api.get(`/events${query}`);
      loaded.push(...body.items.map((raw) => ({ id: raw.id, time: raw.created_at, data: raw.payload || {} })));
      if (!body.next_after) break;
      after = body.next_after;
    }
    events = loaded.slice(-50);
    render();
  }

  return {
    el,
    load,
    render,
    /** A live session.status event. */
    push: (event) => events.push({ id: event.id, time: event.time, data: event.data }),
    /** The latest status change, if any (the linking panel reads its reason). */
    last: () => events[events.length - 1],
  };
}
