// How values read on screen: session status labels and badges, times, chat ids.

import { h } from "./dom.js";
import { t } from "./i18n.js";

export function statusLabel(status) {
  return t(`status.${status}`) === `status.${status}` ? status : t(`status.${status}`);
}

export function statusBadge(status, attrs = {}) {
  return h("span", { class: `badge status-${String(status).toLowerCase()}`, ...attrs }, statusLabel(status));
}

export function formatTime(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

export function chatLabel(chatId) {
  return String(chatId || "").replace(/@c\.us$/, "");
}
