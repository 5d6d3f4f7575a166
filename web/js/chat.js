// The chat panel: history from /api/chat, live messages over the /entry websocket,
// the viewer's name kept in localStorage, an emoji picker, and reconnection.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const NAME_KEY = "owncast.username";
  const MAX_SHOWN = 300;
  let socket = null;
  let retryMs = 1000;
  const shown = new Map(); // message id -> <li>

  function randomName() {
    return "viewer-" + Math.floor(Math.random() * 9000 + 1000);
  }

  function username() {
    return $("username").value.trim() || randomName();
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
    body.innerHTML = message.body || ""; // sanitized by the server
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
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    list.append(li);
    while (list.children.length > MAX_SHOWN) {
      const first = list.firstElementChild;
      shown.delete(first.dataset.id);
      first.remove();
    }
    if (atBottom) list.scrollTop = list.scrollHeight;
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
      send({ type: "USER_JOINED", username: username() });
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

  async function loadEmoji() {
    try {
      const emoji = await (await fetch("/api/emoji")).json();
      const picker = $("emoji-picker");
      picker.replaceChildren(...emoji.map((item) => {
        const img = document.createElement("img");
        img.src = item.emoji;
        img.alt = item.name;
        img.title = item.name;
        img.addEventListener("click", () => {
          const input = $("chat-input");
          input.value += "![" + item.name + "](" + item.emoji + ")";
          input.focus();
        });
        return img;
      }));
    } catch (e) {
      $("emoji-button").hidden = true;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
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
    $("emoji-button").addEventListener("click", () => {
      $("emoji-picker").hidden = !$("emoji-picker").hidden;
    });
    loadEmoji();
    loadHistory().finally(connect);
  });
})();
