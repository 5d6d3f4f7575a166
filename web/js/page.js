// Instance details, live status ("live for hh:mm", the owner's offline message), the viewer
// ping, and the layout controls: chat/about tabs on small screens, hide and pop out the
// chat on wide ones. No inline scripts: CSP forbids them. The embed pages load this too and
// simply lack some of the elements.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const STATUS_EVERY_MS = 5000;
  const PING_EVERY_MS = 30000;
  const CHAT_HIDDEN_KEY = "owncast.chatHidden";
  const DEFAULT_OFFLINE = "The stream is offline. This page turns live by itself when it starts.";
  let liveSince = null;

  async function getJSON(url) {
    const response = await fetch(url, { cache: "no-store" });
    if (!response.ok) throw new Error(url + ": " + response.status);
    return response.json();
  }

  function setText(id, value) {
    const element = $(id);
    if (element) element.textContent = value;
  }

  function socialLink(handle, platforms) {
    const known = platforms[handle.platform];
    const name = (known && known.platform) || handle.platform || "Link";
    const href = window.owncastChatView ? window.owncastChatView.safeHref(handle.url) : handle.url;
    const li = document.createElement("li");
    if (!href) return li;
    const a = document.createElement("a");
    a.href = href;
    a.rel = "noopener me";
    a.title = name;
    const icon = handle.icon || (known && known.icon);
    if (icon) {
      const img = document.createElement("img");
      img.src = icon;
      img.alt = name; // the link's accessible name
      img.width = img.height = 32;
      a.append(img);
    } else {
      a.textContent = name;
    }
    li.append(a);
    return li;
  }

  function renderConfig(config, platforms) {
    document.title = config.name || "Owncast";
    setText("server-name", config.name || "");
    if (config.logo && $("logo")) $("logo").src = config.logo;
    setText("summary", config.summary || "");
    setText("stream-title", config.streamTitle || "");
    setText("offline-message", config.offlineMessage || DEFAULT_OFFLINE);
    const tags = $("tags");
    if (tags) {
      tags.replaceChildren(...(config.tags || []).map((tag) => {
        const li = document.createElement("li");
        li.textContent = tag;
        return li;
      }));
    }
    const social = $("social");
    if (social) {
      social.replaceChildren(...(config.socialHandles || []).map((h) => socialLink(h, platforms)));
    }
    // extraPageContent is sanitized HTML rendered by the server from markdown.
    if ($("page-content")) $("page-content").innerHTML = config.extraPageContent || "";
    if (config.chatDisabled && $("chat")) {
      $("chat-input").disabled = true;
      $("chat-input").placeholder = "Chat is turned off";
    }
  }

  // "1:05" for an hour and five minutes, "0:07" for seven minutes.
  function hoursMinutes(ms) {
    const minutes = Math.max(0, Math.floor(ms / 60000));
    return Math.floor(minutes / 60) + ":" + String(minutes % 60).padStart(2, "0");
  }

  function renderLiveTime() {
    const element = $("live-time");
    if (!element) return;
    element.hidden = liveSince === null;
    if (liveSince !== null) element.textContent = "Live for " + hoursMinutes(Date.now() - liveSince);
  }

  function renderStatus(status) {
    const badge = $("live-badge");
    if (badge) {
      badge.textContent = status.online ? "Live" : "Offline";
      badge.className = "badge " + (status.online ? "live" : "offline");
    }
    const viewers = $("viewer-count");
    if (viewers) {
      viewers.hidden = !status.online;
      viewers.textContent =
        status.viewerCount + (status.viewerCount === 1 ? " viewer" : " viewers");
    }
    const since = status.online && status.lastConnectTime ? Date.parse(status.lastConnectTime) : NaN;
    liveSince = Number.isNaN(since) ? null : since;
    renderLiveTime();
    if (status.streamTitle !== undefined) setText("stream-title", status.streamTitle);
    if (window.owncastPlayer) window.owncastPlayer.setOnline(status.online);
  }

  async function pollStatus() {
    try {
      renderStatus(await getJSON("/api/status"));
    } catch (e) {
      // Keep the last state; the next poll tries again.
    }
    setTimeout(pollStatus, STATUS_EVERY_MS);
  }

  function ping() {
    if (window.owncastPlayer && window.owncastPlayer.online) {
      fetch("/api/ping", { method: "POST" }).catch(() => {});
    }
  }

  // Small screens: one panel under the video, chosen with two tabs (arrow keys move).
  function setUpTabs() {
    const layout = $("layout");
    const tabs = [$("tab-chat"), $("tab-about")];
    if (!layout || !tabs[0]) return;
    const select = (tab, focus) => {
      tabs.forEach((t) => {
        const on = t === tab;
        t.setAttribute("aria-selected", String(on));
        t.tabIndex = on ? 0 : -1;
      });
      layout.dataset.panel = tab.getAttribute("aria-controls");
      if (focus) tab.focus();
    };
    // The skip link leads to the message box: bring the chat panel back first.
    const skip = document.querySelector(".skip-link");
    if (skip) {
      skip.addEventListener("click", () => {
        select(tabs[0], false);
        if (layout.classList.contains("chat-hidden")) $("chat-toggle").click();
      });
    }
    tabs.forEach((tab, index) => {
      tab.addEventListener("click", () => select(tab, false));
      tab.addEventListener("keydown", (event) => {
        if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
        event.preventDefault();
        select(tabs[(index + 1) % tabs.length], true);
      });
    });
  }

  // Wide screens: hide the chat (remembered), or pop it out into a window of its own.
  function setUpChatControls() {
    const layout = $("layout");
    const toggle = $("chat-toggle");
    if (!layout || !toggle) return;
    const show = (hidden) => {
      layout.classList.toggle("chat-hidden", hidden);
      toggle.setAttribute("aria-expanded", String(!hidden));
      toggle.textContent = hidden ? "Show chat" : "Hide chat";
      localStorage.setItem(CHAT_HIDDEN_KEY, hidden ? "1" : "");
    };
    show(localStorage.getItem(CHAT_HIDDEN_KEY) === "1");
    toggle.addEventListener("click", () => show(!layout.classList.contains("chat-hidden")));
    const popout = $("chat-popout");
    popout.addEventListener("click", (event) => {
      const opened = window.open(popout.href, "owncast-chat", "popup,width=400,height=640");
      if (opened) {
        event.preventDefault();
        show(true);
      }
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    Promise.all([
      getJSON("/api/config"),
      getJSON("/api/socialplatforms").catch(() => ({})),
    ]).then(([config, platforms]) => renderConfig(config, platforms)).catch(() => {});
    setUpTabs();
    setUpChatControls();
    pollStatus();
    setInterval(renderLiveTime, 15000);
    setInterval(ping, PING_EVERY_MS);
  });
})();
