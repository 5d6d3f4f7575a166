// Instance details, live status and the viewer ping. No inline scripts: CSP forbids them.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const STATUS_EVERY_MS = 5000;
  const PING_EVERY_MS = 30000;

  async function getJSON(url) {
    const response = await fetch(url, { cache: "no-store" });
    if (!response.ok) throw new Error(url + ": " + response.status);
    return response.json();
  }

  function renderConfig(config) {
    document.title = config.name || "Owncast";
    $("server-name").textContent = config.name || "";
    if (config.logo) $("logo").src = config.logo;
    $("summary").textContent = config.summary || "";
    $("stream-title").textContent = config.streamTitle || "";
    const tags = $("tags");
    tags.replaceChildren(...(config.tags || []).map((tag) => {
      const li = document.createElement("li");
      li.textContent = tag;
      return li;
    }));
    const social = $("social");
    social.replaceChildren(...(config.socialHandles || []).map((handle) => {
      const li = document.createElement("li");
      const a = document.createElement("a");
      a.href = handle.url;
      a.rel = "noopener noreferrer";
      a.textContent = handle.platform;
      li.append(a);
      return li;
    }));
    // extraPageContent is sanitized HTML rendered by the server from markdown.
    $("page-content").innerHTML = config.extraPageContent || "";
  }

  function renderStatus(status) {
    const badge = $("live-badge");
    badge.textContent = status.online ? "Live" : "Offline";
    badge.className = "badge " + (status.online ? "live" : "offline");
    const viewers = $("viewer-count");
    viewers.hidden = !status.online;
    viewers.textContent = status.viewerCount + (status.viewerCount === 1 ? " viewer" : " viewers");
    if (status.streamTitle !== undefined) $("stream-title").textContent = status.streamTitle;
    window.owncastPlayer && window.owncastPlayer.setOnline(status.online);
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

  document.addEventListener("DOMContentLoaded", () => {
    getJSON("/api/config").then(renderConfig).catch(() => {});
    pollStatus();
    setInterval(ping, PING_EVERY_MS);
  });
})();
