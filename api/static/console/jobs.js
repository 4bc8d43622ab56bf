// The session page's recent jobs table (kind, status, when, error).

import { h, replace } from "./dom.js";
import { formatTime } from "./format.js";
import { t } from "./i18n.js";

export function jobsPanel() {
  const el = h("section", { class: "card", id: "jobs", "aria-labelledby": "jobs-title" });

  function render(jobs = []) {
    replace(
      el,
      h("h3", { id: "jobs-title" }, t("jobs.title")),
      jobs.length
        ? h(
            "table",
            { class: "jobs" },
            h("thead", {}, h("tr", {}, ["jobs.kind", "jobs.status", "jobs.created", "jobs.error"].map((k) => h("th", { scope: "col" }, t(k))))),
            h(
              "tbody",
              {},
              jobs.slice(0, 15).map((job) =>
                h(
                  "tr",
                  {},
                  h("td", { "data-label": t("jobs.kind") }, job.kind),
                  h("td", { "data-label": t("jobs.status") }, h("span", { class: `badge job-${job.status}` }, job.status)),
                  h("td", { "data-label": t("jobs.created") }, formatTime(job.created_at)),
                  h("td", { "data-label": t("jobs.error") }, job.error || ""),
                ),
              ),
            ),
          )
        : h("p", { class: "empty" }, t("jobs.empty")),
    );
  }

  return { el, render };
}
