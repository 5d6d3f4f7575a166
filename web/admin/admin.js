// The admin page's shared helpers, and the dashboard, chat, integrations and logs tabs.
// Everything goes through the admin API with the browser's basic auth; the other
// scripts (charts, editors, settings, main) hang off window.OwncastAdmin.
"use strict";

window.OwncastAdmin = (function () {
  const $ = (id) => document.getElementById(id);
  const EVENTS = ["CHAT", "NAME_CHANGE", "USER_JOINED", "VISIBILITY-UPDATE", "STREAM_STARTED",
    "STREAM_STOPPED", "STREAM_TITLE_UPDATED"];

  /** An admin API call; rejects with the server's own message on an error status. */
  async function api(path, body) {
    const options = body === undefined ? {} : {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    };
    const response = await fetch("/api/admin/" + path, options);
    let data = null;
    try { data = await response.json(); } catch (e) { /* empty body */ }
    if (!response.ok) {
      throw new Error((data && data.message) || response.status + " " + response.statusText);
    }
    return data;
  }

  function toast(text) {
    const box = $("toast");
    box.textContent = text;
    box.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { box.hidden = true; }, 4000);
  }

  /** el("p", {className: "x"}, "text", child...): a new element. */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    Object.entries(props || {}).forEach(([key, value]) => {
      if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("aria-") || key === "role" || key === "for") {
        node.setAttribute(key, value);
      } else node[key] = value;
    });
    node.append(...children.filter((c) => c !== null && c !== undefined));
    return node;
  }

  function when(value) {
    return value ? new Date(value).toLocaleString() : "—";
  }

  /** "1 h 5 min", "3 min 20 s": how long since ``start``. */
  function duration(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    const d = Math.floor(seconds / 86400), h = Math.floor(seconds / 3600) % 24;
    const m = Math.floor(seconds / 60) % 60, s = seconds % 60;
    if (d) return `${d} d ${h} h`;
    if (h) return `${h} h ${m} min`;
    if (m) return `${m} min ${s} s`;
    return `${s} s`;
  }

  function cell(text) {
    return el("td", { textContent: text });
  }

  function button(label, onClick, className) {
    const b = el("button", { type: "button", textContent: label, className: className || "" });
    b.addEventListener("click", onClick);
    return b;
  }

  function definitions(dl, rows) {
    dl.replaceChildren(...rows.flatMap(([term, value]) => [
      el("dt", { textContent: term }), el("dd", { textContent: value })]));
  }

  // -- dashboard -----------------------------------------------------------------------
  const BROADCASTER_FIELDS = [
    ["width", "Resolution", (d) => d.width && d.height ? `${d.width} × ${d.height} px` : "—"],
    ["framerate", "Frame rate", (d) => d.framerate ? `${d.framerate} fps` : "—"],
    ["videoBitrate", "Video bitrate", (d) => kbps(d.videoBitrate)],
    ["videoCodec", "Video codec", (d) => d.videoCodec || "—"],
    ["audioBitrate", "Audio bitrate", (d) => kbps(d.audioBitrate)],
    ["audioCodec", "Audio codec", (d) => d.audioCodec || "—"],
    ["encoder", "Encoder", (d) => d.encoder || "—"],
  ];

  function kbps(value) {
    if (!value) return "not announced";
    return value >= 1000 ? `${(value / 1000).toFixed(2)} Mbit/s` : `${value} kbit/s`;
  }

  /** A few figures from /metrics (Prometheus text): name -> summed value. */
  async function metrics() {
    const response = await fetch("/metrics");
    if (!response.ok) return {};
    const sums = {};
    (await response.text()).split("\n").forEach((line) => {
      const match = /^([a-z_]+)(\{[^}]*\})?\s+([-0-9.e+]+|NaN)$/.exec(line);
      if (!match) return;
      const [, name, labels, value] = match;
      const key = name === "owncast_segment_write_lag_seconds" ? name + "_max" : name;
      const number = Number(value);
      if (Number.isNaN(number)) return;
      sums[key] = key.endsWith("_max") ? Math.max(sums[key] || 0, number)
        : (sums[key] || 0) + number;
      if (labels) sums[name + labels] = number;
    });
    return sums;
  }

  function health(status, m) {
    const details = (status.broadcaster && status.broadcaster.streamDetails) || {};
    const ingest = (details.videoBitrate || 0) + (details.audioBitrate || 0);
    let announced = "no broadcast";
    if (status.online && details.videoBitrate) {
      announced = kbps(ingest) + " (as the encoder announced)";
    } else if (status.online) {
      announced = "video: not announced by the encoder" +
        (details.audioBitrate ? `; audio ${kbps(details.audioBitrate)}` : "");
    }
    const rows = [["Ingest bitrate", announced]];
    if ("owncast_ffmpeg_running" in m) {
      rows.push(["Transcoder (ffmpeg)", m.owncast_ffmpeg_running ? "running" : "not running"]);
      rows.push(["Transcoder restarts", String(m.owncast_ffmpeg_restarts || 0)]);
    }
    if ("owncast_segment_write_lag_seconds_max" in m && status.online) {
      const lag = m.owncast_segment_write_lag_seconds_max;
      rows.push(["Newest segment", `${lag.toFixed(1)} s ago (keeps up when below the ` +
        "segment length)"]);
    }
    if ("owncast_segment_upload_failures" in m) {
      rows.push(["Failed S3 uploads", String(m.owncast_segment_upload_failures)]);
    }
    rows.push(["ffmpeg speed, dropped frames", "not measured by this server"]);
    return rows;
  }

  async function loadDashboard() {
    const [status, viewers, hardware, warnings, m] = await Promise.all([
      api("status"), api("viewersOverTime"), api("hardwarestats"), api("logs/warnings"),
      metrics().catch(() => ({}))]);
    $("dash-disk-full").hidden = !status.diskFull;
    $("dash-online").textContent = status.online ? "Live" : "Offline";
    $("dash-online").classList.toggle("live", status.online);
    const b = status.broadcaster;
    $("dash-since").textContent = b ? `Live since ${new Date(b.time).toLocaleTimeString()} ` +
      `(${duration((Date.now() - new Date(b.time).getTime()) / 1000)})` : "";
    $("dash-viewers").textContent = status.viewerCount;
    $("dash-peaks").textContent = `This stream ${status.sessionPeakViewerCount} · ` +
      `all time ${status.overallPeakViewerCount}`;
    definitions($("dash-health"), health(status, m));
    definitions($("dash-broadcaster"), b ? [["Address", b.remoteAddr],
      ...BROADCASTER_FIELDS.map(([, label, show]) => [label, show(b.streamDetails || {})])]
      : [["Broadcaster", "none connected"]]);
    $("disconnect").disabled = !status.online;
    // The viewers line ends at the count the card shows, now.
    const now = new Date().toISOString();
    const charts = OwncastAdmin.charts;
    charts.render("viewers", [...viewers, { time: now, value: status.viewerCount }]);
    charts.render("cpu", hardware.cpu);
    charts.render("memory", hardware.memory);
    charts.render("disk", hardware.disk);
    $("dash-warnings").replaceChildren(...warnings.slice(-20).reverse().map(logItem));
  }

  // -- chat ----------------------------------------------------------------------------
  async function loadChat() {
    const [messages, clients] = await Promise.all([api("chat/messages"), api("clients")]);
    $("moderation").replaceChildren(...messages.slice(-300).reverse().map((m) => {
      const tr = el("tr", { dataset: { id: m.id } });
      const body = el("td");
      body.innerHTML = m.body; // sanitized by the server
      const toggle = el("td", {}, button(m.visible ? "Hide" : "Show", async () => {
        try {
          await api("chat/updatemessagevisibility", { visible: !m.visible, idArray: [m.id] });
          await loadChat();
        } catch (e) { toast(e.message); }
      }));
      tr.append(cell(when(m.timestamp)), cell(m.author || m.type), body, toggle);
      if (!m.visible) tr.classList.add("hidden-message");
      return tr;
    }));
    $("clients").replaceChildren(...clients.map((c) => el("tr", {}, cell(c.username || "—"),
      cell(c.ipAddress), cell(c.messageCount), cell(when(c.connectedAt)))));
  }

  // -- tokens and webhooks -------------------------------------------------------------
  function deleteCell(path, body) {
    return el("td", {}, button("Delete", async () => {
      await api(path, body).catch((e) => toast(e.message));
      loadIntegrations();
    }, "danger"));
  }

  async function loadIntegrations() {
    const [tokens, webhooks] = await Promise.all([api("accesstokens"), api("webhooks")]);
    $("tokens").replaceChildren(...tokens.map((t) => el("tr", {}, cell(t.name),
      cell(t.scopes.join(", ")), cell(when(t.timestamp)), cell(when(t.lastUsed)),
      deleteCell("accesstokens/delete", { token: t.token }))));
    $("webhooks").replaceChildren(...webhooks.map((w) => el("tr", {}, cell(w.url),
      cell(w.events.join(", ")), cell(when(w.timestamp)), cell(when(w.lastUsed)),
      deleteCell("webhooks/delete", { id: w.id }))));
  }

  function wireIntegrations() {
    const fieldset = $("webhook-events");
    EVENTS.forEach((name) => {
      fieldset.append(el("label", {}, el("input", { type: "checkbox", name: "event", value: name }),
        " " + name));
    });
    $("token-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const form = event.target;
      const scopes = [...form.querySelectorAll("input[name=scope]:checked")].map((b) => b.value);
      try {
        const token = await api("accesstokens/create", { name: form.elements.name.value, scopes });
        $("new-token-value").textContent = token.token;
        $("new-token").hidden = false;
        form.reset();
        loadIntegrations();
      } catch (e) { toast(e.message); }
    });
    $("copy-token").addEventListener("click", () => copy($("new-token-value").textContent));
    $("webhook-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const form = event.target;
      const events = [...form.querySelectorAll("input[name=event]:checked")].map((b) => b.value);
      try {
        await api("webhooks/create", { url: form.elements.url.value, events });
        form.reset();
        loadIntegrations();
      } catch (e) { toast(e.message); }
    });
  }

  function copy(text) {
    const done = () => toast("Copied");
    const fail = () => toast("Select the text and copy it");
    if (navigator.clipboard) navigator.clipboard.writeText(text).then(done, fail);
    else fail();
  }

  // -- logs ----------------------------------------------------------------------------
  function logItem(entry) {
    return el("li", { className: entry.level,
      textContent: when(entry.time) + " [" + entry.level + "] " + entry.message });
  }

  async function loadLogs() {
    const level = $("log-level").value;
    const entries = await api(level === "warning" || level === "error" ? "logs/warnings" : "logs");
    $("log-list").replaceChildren(...entries.filter((e) => !level || e.level === level)
      .reverse().map(logItem));
  }

  return { $, api, toast, el, when, duration, cell, button, copy, definitions, kbps,
    loadDashboard, loadChat, loadIntegrations, wireIntegrations, loadLogs };
})();
