// The session page's conversation panels: the chats list, the open chat's thread and
// the send box, side by side.

import { enc } from "./api.js";
import { debounce } from "./debounce.js";
import { h, replace } from "./dom.js";
import { announce, errorText, run } from "./feedback.js";
import { chatLabel, formatTime } from "./format.js";
import { t } from "./i18n.js";
import { api } from "./state.js";

export function chatPanel(name) {
  const state = { chats: [], chat: null, thread: new Map() };
  const chatsBox = h("section", { class: "card", id: "chats", "aria-labelledby": "chats-title" });
  const threadBox = h("section", { class: "card thread", id: "thread", "aria-labelledby": "thread-title" });
  const sendBox = sendForm();
  const el = h("div", { class: "columns" }, h("div", {}, chatsBox), h("div", {}, threadBox, sendBox));

  function renderChats() {
    const list = state.chats.map((chat) => {
      const who = chat.contact?.name || chat.contact?.push_name || chatLabel(chat.chat_id);
      return h(
        "li",
        {},
        h(
          "button",
          {
            type: "button",
            class: "chat",
            "data-chat": chat.chat_id,
            "aria-current": chat.chat_id === state.chat ? "true" : null,
            onclick: () => openChat(chat.chat_id),
          },
          h("strong", {}, who),
          chat.unread_count ? h("span", { class: "badge unread" }, t("chats.unread", { count: chat.unread_count })) : null,
          h("span", { class: "preview" }, chat.last_message?.body || ""),
        ),
      );
    });
    replace(
      chatsBox,
      h("h3", { id: "chats-title" }, t("chats.title")),
      list.length ? h("ul", { class: "chats" }, list) : h("p", { class: "empty" }, t("chats.empty")),
    );
  }

  async function loadChats() {
    try {
      state.chats = (await api.get(`/session/${enc(name)}/chats?per_page=50`)).items;
    } catch {
      state.chats = [];
    }
    renderChats();
  }
  const refreshChats = debounce(() => loadChats(), 300);

  function renderThread() {
    const title = h("h3", { id: "thread-title" }, state.chat ? t("thread.title", { chat: chatLabel(state.chat) }) : t("thread.heading"));
    if (!state.chat) {
      replace(threadBox, title, h("p", { class: "empty" }, t("thread.none")));
      return;
    }
    const messages = [...state.thread.values()].sort((a, b) => String(a.created_at || "").localeCompare(String(b.created_at || "")));
    replace(
      threadBox,
      title,
      messages.length
        ? h(
            "ol",
            { class: "messages", id: "messages" },
            messages.map((m) =>
              h(
                "li",
                { class: `message ${m.direction}`, "data-message": m.id },
                h("span", { class: "visually-hidden" }, `${t(m.direction === "in" ? "msg.in" : "msg.out")}: `),
                h("span", { class: "body" }, m.body),
                h("span", { class: "meta" }, formatTime(m.created_at), m.direction === "out" ? ` · ${m.ack}` : ""),
              ),
            ),
          )
        : h("p", { class: "empty" }, t("thread.empty")),
    );
    const list = document.getElementById("messages");
    if (list) list.scrollTop = list.scrollHeight;
  }

  async function openChat(chatId) {
    state.chat = chatId;
    state.thread = new Map();
    const to = document.getElementById("send-to");
    if (to) to.value = chatLabel(chatId);
    renderChats();
    renderThread();
    try {
      const body = await api.get(`/session/${enc(name)}/messages?chat=${enc(chatId)}&limit=50`);
      if (state.chat !== chatId) return;
      for (const m of body.items) state.thread.set(m.id, m);
    } catch (error) {
      announce(errorText(error));
    }
    renderThread();
  }

  function sendForm() {
    const error = h("p", { class: "error", role: "alert", id: "send-error" });
    const to = h("input", { id: "send-to", name: "to", required: true, autocomplete: "off", inputmode: "tel" });
    const text = h("textarea", { id: "send-text", name: "text", required: true, rows: "3", maxlength: "65536" });
    const form = h(
      "form",
      { class: "card send", id: "send-form", "aria-labelledby": "send-title" },
      h("h3", { id: "send-title" }, t("send.title")),
      h("label", { for: "send-to" }, t("send.to")),
      to,
      h("label", { for: "send-text" }, t("send.text")),
      text,
      h("button", { type: "submit" }, t("send.submit")),
      error,
    );
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const sent = await run(
        () => api.post(`/session/${enc(name)}/messages`, { to: to.value.trim(), text: text.value }),
        t("send.done"),
        error,
      );
      if (!sent) return;
      text.value = "";
      const message = sent.message;
      if (message.chat_id !== state.chat) await openChat(message.chat_id);
      else {
        state.thread.set(message.id, message);
        renderThread();
      }
      refreshChats("chats");
    });
    return form;
  }

  /** A live message.* event of this session. */
  function onMessageEvent(event) {
    const message = event.data.message;
    if (message && message.chat_id === state.chat) {
      state.thread.set(message.id, { ...state.thread.get(message.id), ...message });
      renderThread();
    }
    refreshChats("chats");
  }

  return {
    el,
    loadChats,
    renderThread,
    /** After a (re)load, the open chat's thread is fetched again. */
    reopen: async () => {
      if (state.chat) await openChat(state.chat);
    },
    onMessageEvent,
  };
}
