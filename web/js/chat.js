// The chat panel: history from /api/chat, live messages over the /entry websocket,
// the viewer's name kept in localStorage, an emoji picker, and reconnection. Bodies are
// shown by chatview.js (emoji shortcodes, safe links). A page whose <body> has
// data-chat="readonly" (the read-only embed) shows the chat without sending anything.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const NAME_KEY = "owncast.username";
  const MAX_SHOWN = 300;
  let socket = null;
  let retryMs = 1000;
  const shown = new Map(); // message id -> <li>
  const emoji = new Map(); // shortcode name -> image URL
  const readonly = () => document.body.dataset.chat === "readonly";

  function randomName() {
    return "viewer-" + Math.floor(Math.random() * 9000 + 1000);
  }

  function username() {
    const input = $("username");
    return (input && input.value.trim()) || randomName();
  }

  function timeOf(message) {
    const when = message.timestamp ? new Date(message.timestamp) : new Date();
    return when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function addMessage(message) {
    if (message.visible === false || shown.has(message.id)) return;
    const li = document.createElement("li");
    li.dataset.id = message.id || "";
    li.title = timeOf(message);
    if (message.type === "SYSTEM") li.className = "system";
    if (message.type === "CHAT_ACTION") li.className = "action";
    if (message.author) {
      const author = document.createElement("span");
      author.className = "author";
      author.textContent = message.author;
      li.append(author);
    }
    const body = document.createElement("span");
    body.className = "body";
    window.owncastChatView.render(body, message.body, emoji); // sanitized by the server
    li.append(body);
    append(li);
    if (message.id) shown.set(message.id, li);
  }

  function addNotice(text) {
    const li = document.createElement("li");
    li.className = "notice";
    li.textContent = text;
    append(li);
  }

  function append(li) {
    const list = $("messages");
    const log = $("chat-log");
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    list.append(li);
    while (list.children.length > MAX_SHOWN) {
      const first = list.firstElementChild;
      shown.delete(first.dataset.id);
      first.remove();
    }
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  function hide(id) {
    const li = shown.get(id);
    if (li) {
      li.remove();
      shown.delete(id);
    }
  }

  function onMessage(event) {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch (e) {
      return;
    }
    switch (message.type) {
      case "CHAT":
      case "SYSTEM":
      case "CHAT_ACTION":
        addMessage(message);
        break;
      case "VISIBILITY-UPDATE":
        if (message.visible) addMessage(message);
        else hide(message.id);
        break;
      case "NAME_CHANGE":
        addNotice(message.oldName + " is now " + message.newName);
        break;
      case "USER_JOINED":
        addNotice(message.username + " joined");
        break;
      case "PING":
        send({ type: "PONG" });
        break;
    }
  }

  function send(message) {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + "/entry");
    socket.addEventListener("open", () => {
      retryMs = 1000;
      $("chat-status").hidden = true;
      if (!readonly()) send({ type: "USER_JOINED", username: username() });
    });
    socket.addEventListener("message", onMessage);
    socket.addEventListener("close", () => {
      $("chat-status").hidden = false;
      setTimeout(() => loadHistory().finally(connect), retryMs);
      retryMs = Math.min(retryMs * 2, 15000);
    });
  }

  async function loadHistory() {
    try {
      const response = await fetch("/api/chat", { cache: "no-store" });
      (await response.json()).forEach(addMessage);
    } catch (e) {
      // History is a nicety; live messages still arrive.
    }
  }

  // The custom emoji: known shortcodes for the messages, and the picker's buttons, which
  // put `:name:` into the message box.
  async function loadEmoji() {
    let items = [];
    try {
      items = await (await fetch("/api/emoji")).json();
    } catch (e) {
      // Without the list shortcodes stay text.
    }
    items.forEach((item) => emoji.set(item.name, item.emoji));
    const picker = $("emoji-picker");
    if (!picker) return;
    if (!items.length) {
      $("emoji-button").hidden = true;
      return;
    }
    picker.replaceChildren(...items.map((item) => {
      const button = document.createElement("button");
      button.type = "button";
      button.title = ":" + item.name + ":";
      const img = document.createElement("img");
      img.src = item.emoji;
      img.alt = item.name;
      button.append(img);
      button.addEventListener("click", () => {
        const input = $("chat-input");
        const before = input.value && !input.value.endsWith(" ") ? " " : "";
        input.value += before + ":" + item.name + ": ";
        input.focus();
      });
      return button;
    }));
  }

  function togglePicker(open) {
    const picker = $("emoji-picker");
    picker.hidden = !open;
    $("emoji-button").setAttribute("aria-expanded", String(open));
    if (open) {
      const first = picker.querySelector("button");
      if (first) first.focus();
    }
  }

  function setUpForm() {
    const nameInput = $("username");
    nameInput.value = localStorage.getItem(NAME_KEY) || randomName();
    localStorage.setItem(NAME_KEY, nameInput.value);
    nameInput.addEventListener("change", () => {
      const old = localStorage.getItem(NAME_KEY) || "";
      const name = username();
      nameInput.value = name;
      localStorage.setItem(NAME_KEY, name);
      if (name !== old) send({ type: "NAME_CHANGE", oldName: old, newName: name });
    });
    $("chat-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = $("chat-input");
      const body = input.value.trim();
      if (!body) return;
      if (send({ type: "CHAT", author: username(), body })) input.value = "";
    });
    $("emoji-button").addEventListener("click", () => togglePicker($("emoji-picker").hidden));
    $("emoji-picker").addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        togglePicker(false);
        $("emoji-button").focus();
      }
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (!readonly()) setUpForm();
    // Emoji first, so that history shows its shortcodes as images.
    loadEmoji().finally(() => loadHistory().finally(connect));
  });
})();
