// Telling the user what happened: the screen-reader announcer, error texts, the
// run-an-action-and-report wrapper and the confirm dialog.

import { ApiError } from "./api.js";
import { h } from "./dom.js";
import { t } from "./i18n.js";

const liveRegion = document.getElementById("announcer");

export function announce(text) {
  // Re-set even an identical text, so that screen readers read it again.
  liveRegion.textContent = "";
  requestAnimationFrame(() => {
    liveRegion.textContent = text;
  });
}

export function errorText(error) {
  if (error instanceof ApiError) {
    if (error.status === 403) return t("error.forbidden");
    return t("error.generic", { message: error.message });
  }
  return t("error.network");
}

export async function run(action, doneText, errorBox) {
  try {
    const result = await action();
    if (doneText) announce(doneText);
    if (errorBox) errorBox.textContent = "";
    return result;
  } catch (error) {
    const text = errorText(error);
    if (errorBox) errorBox.textContent = text;
    announce(text);
    return undefined;
  }
}

export function confirmDialog(title, text, confirmLabel) {
  return new Promise((resolve) => {
    const dialog = h(
      "dialog",
      { class: "confirm", "aria-labelledby": "confirm-title", "aria-describedby": "confirm-text" },
      h("h2", { id: "confirm-title" }, title),
      h("p", { id: "confirm-text" }, text),
      h(
        "form",
        { method: "dialog", class: "row" },
        h("button", { value: "cancel", type: "submit", autofocus: true }, t("action.cancel")),
        h("button", { value: "confirm", type: "submit", class: "danger" }, confirmLabel),
      ),
    );
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(dialog.returnValue === "confirm");
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}
