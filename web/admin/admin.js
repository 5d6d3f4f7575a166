// The admin page: reads and writes through the admin API with the browser's basic auth.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const EVENTS = ["CHAT", "NAME_CHANGE", "USER_JOINED", "VISIBILITY-UPDATE", "STREAM_STARTED",
    "STREAM_STOPPED", "STREAM_TITLE_UPDATED"];
  const VARIANT_FIELDS = [["scaledWidth", "number"], ["scaledHeight", "number"],
    ["framerate", "number"], ["videoBitrate", "number"], ["audioBitrate", "number"],
    ["cpuUsageLevel", "number"], ["videoPassthrough", "checkbox"], ["audioPassthrough", "checkbox"]];
  let config = null;

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
    const el = $("toast");
    el.textContent = text;
    el.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { el.hidden = true; }, 3000);
  }

  function when(value) {
    return value ? new Date(value).toLocaleString() : "—";
  }

  function cell(text) {
    const td = document.createElement("td");
    td.textContent = text;
    return td;
  }

  function button(label, onClick, className) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    if (className) b.className = className;
    b.addEventListener("click", onClick);
    return b;
  }

  // -- tabs ----------------------------------------------------------------------------
  function showTab() {
    const name = (location.hash || "#dashboard").slice(1);
    document.querySelectorAll(".panel").forEach((panel) => {
      panel.hidden = panel.id !== name;
    });
    document.querySelectorAll("#tabs a").forEach((a) => {
      a.classList.toggle("active", a.getAttribute("href") === "#" + name);
    });
    const loaders = { dashboard: loadDashboard, chat: loadChat, integrations: loadIntegrations,
      logs: loadLogs };
    if (loaders[name]) loaders[name]().catch((e) => toast(e.message));
  }

  // -- dashboard -----------------------------------------------------------------------
  function chart(svg, points) {
    const width = 300, height = 110, pad = 18;
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.replaceChildren();
    const ns = "http://www.w3.org/2000/svg";
    const max = Math.max(1, ...points.map((p) => p.value));
    if (points.length) {
      const t0 = new Date(points[0].time).getTime();
      const t1 = Math.max(t0 + 1, new Date(points[points.length - 1].time).getTime());
      const line = document.createElementNS(ns, "polyline");
      const coords = points.map((p) => [
        pad + (new Date(p.time).getTime() - t0) / (t1 - t0) * (width - 2 * pad),
        height - pad - p.value / max * (height - 2 * pad)]);
      // A single sample (a fresh server) draws as a flat line rather than nothing.
      if (coords.length === 1) coords.push([width - pad, coords[0][1]]);
      line.setAttribute("points", coords.map(([x, y]) => x.toFixed(1) + "," + y.toFixed(1))
        .join(" "));
      svg.append(line);
    }
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", 2);
    label.setAttribute("y", 10);
    label.textContent = points.length ? "max " + max + ", now " + points[points.length - 1].value
      : "no samples yet";
    svg.append(label);
  }

  async function loadDashboard() {
    const [status, viewers, hardware, warnings] = await Promise.all([
      api("status"), api("viewersOverTime"), api("hardwarestats"), api("logs/warnings")]);
    $("dash-disk-full").hidden = !status.diskFull;
    $("dash-online").textContent = status.online ? "Live" : "Offline";
    $("dash-viewers").textContent = status.viewerCount;
    $("dash-peaks").textContent = "session " + status.sessionPeakViewerCount + " · all time " +
      status.overallPeakViewerCount;
    const dl = $("dash-broadcaster");
    dl.replaceChildren();
    const b = status.broadcaster;
    const rows = b ? [["Address", b.remoteAddr], ["Since", when(b.time)],
      ...Object.entries(b.streamDetails || {})] : [["", "No broadcaster connected"]];
    rows.forEach(([key, value]) => {
      const dt = document.createElement("dt");
      dt.textContent = key;
      const dd = document.createElement("dd");
      dd.textContent = value === "" || value === 0 ? "—" : value;
      dl.append(dt, dd);
    });
    $("disconnect").disabled = !status.online;
    chart($("chart-viewers"), viewers);
    chart($("chart-cpu"), hardware.cpu);
    chart($("chart-memory"), hardware.memory);
    chart($("chart-disk"), hardware.disk);
    $("dash-warnings").replaceChildren(...warnings.slice(-20).reverse().map(logItem));
  }

  // -- settings ------------------------------------------------------------------------
  function settingValue(key) {
    const c = config;
    const details = c.instanceDetails;
    const map = {
      name: details.name, streamTitle: details.streamTitle, summary: details.summary,
      logo: details.logo, tags: details.tags, pageContent: details.extraPageContent,
      socialHandles: details.socialHandles, customStyles: details.customStyles,
      nsfw: details.nsfw, serverUrl: c.yp.instanceUrl, directoryEnabled: c.yp.enabled,
      streamKey: c.streamKey, webServerPort: c.webServerPort, rtmpServerPort: c.rtmpServerPort,
      ffmpegPath: c.ffmpegPath, s3: c.s3, latencyLevel: c.videoSettings.latencyLevel,
      videoCodec: c.videoCodec,
    };
    return map[key];
  }

  function fillSettings() {
    document.querySelectorAll("form.setting").forEach((form) => {
      const input = form.elements.value;
      const value = settingValue(form.dataset.key);
      const type = form.dataset.type;
      if (type === "bool") input.checked = !!value;
      else if (type === "list") input.value = (value || []).join(", ");
      else if (type === "json") input.value = JSON.stringify(value, null, 2);
      else input.value = value === undefined || value === null ? "" : value;
    });
    renderVariants(config.videoSettings.videoQualityVariants);
  }

  function readSetting(form) {
    const input = form.elements.value;
    switch (form.dataset.type) {
      case "bool": return input.checked;
      case "int": return Number(input.value);
      case "list": return input.value.split(",").map((t) => t.trim()).filter(Boolean);
      case "json": return JSON.parse(input.value);
      default: return input.value;
    }
  }

  function showError(form, message) {
    let p = form.querySelector(".error");
    if (!message) {
      if (p) p.remove();
      return;
    }
    if (!p) {
      p = document.createElement("p");
      p.className = "error";
      p.setAttribute("role", "alert");
      form.append(p);
    }
    p.textContent = message;
  }

  async function saveSetting(form, value) {
    try {
      await api("config/" + form.dataset.path, { value });
      showError(form, null);
      toast("Saved");
      config = await api("serverconfig");
    } catch (e) {
      showError(form, e.message);
    }
  }

  function wireSettings() {
    document.querySelectorAll("form.setting").forEach((form) => {
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        let value;
        try {
          value = readSetting(form);
        } catch (e) {
          showError(form, "Not valid JSON: " + e.message);
          return;
        }
        saveSetting(form, value);
      });
    });
    $("logo-file").addEventListener("change", (event) => {
      const file = event.target.files[0];
      if (!file) return;
      const reader = new FileReader();
      reader.onload = () => saveSetting(event.target.form, reader.result);
      reader.readAsDataURL(file);
    });
    $("preview-button").addEventListener("click", async () => {
      // The server renders and sanitizes: save, then show what viewers get.
      const form = $("preview-button").form;
      await saveSetting(form, readSetting(form));
      const preview = $("page-preview");
      // serverconfig has the markdown (as Owncast 0.0.7); /api/config the rendered page.
      const rendered = await (await fetch("/api/config", { cache: "no-store" })).json();
      preview.innerHTML = rendered.extraPageContent;
      preview.hidden = false;
    });
  }

  // -- video variants ------------------------------------------------------------------
  function renderVariants(variants) {
    $("variants").replaceChildren(...variants.map(variantRow));
  }

  function variantRow(variant) {
    const tr = document.createElement("tr");
    VARIANT_FIELDS.forEach(([field, type]) => {
      const td = document.createElement("td");
      const input = document.createElement("input");
      input.type = type;
      input.dataset.field = field;
      input.setAttribute("aria-label", field);
      if (type === "checkbox") input.checked = !!variant[field];
      else input.value = variant[field] ?? 0;
      td.append(input);
      tr.append(td);
    });
    const td = document.createElement("td");
    td.append(button("Remove", () => tr.remove()));
    tr.append(td);
    return tr;
  }

  function readVariants() {
    return [...$("variants").children].map((tr) => {
      const variant = {};
      tr.querySelectorAll("input").forEach((input) => {
        variant[input.dataset.field] = input.type === "checkbox" ? input.checked
          : Number(input.value);
      });
      return variant;
    });
  }

  // -- chat ----------------------------------------------------------------------------
  async function loadChat() {
    const [messages, clients] = await Promise.all([api("chat/messages"), api("clients")]);
    $("moderation").replaceChildren(...messages.slice(-300).reverse().map((m) => {
      const tr = document.createElement("tr");
      tr.dataset.id = m.id;
      const body = document.createElement("td");
      body.innerHTML = m.body; // sanitized by the server
      const toggle = document.createElement("td");
      toggle.append(button(m.visible ? "Hide" : "Show", async () => {
        try {
          await api("chat/updatemessagevisibility", { visible: !m.visible, idArray: [m.id] });
          await loadChat();
        } catch (e) { toast(e.message); }
      }));
      tr.append(cell(when(m.timestamp)), cell(m.author || m.type), body, toggle);
      if (!m.visible) tr.classList.add("hidden-message");
      return tr;
    }));
    $("clients").replaceChildren(...clients.map((c) => {
      const tr = document.createElement("tr");
      tr.append(cell(c.username || "—"), cell(c.ipAddress), cell(c.messageCount),
        cell(when(c.connectedAt)));
      return tr;
    }));
  }

  // -- tokens and webhooks -------------------------------------------------------------
  async function loadIntegrations() {
    const [tokens, webhooks] = await Promise.all([api("accesstokens"), api("webhooks")]);
    $("tokens").replaceChildren(...tokens.map((t) => {
      const tr = document.createElement("tr");
      const del = document.createElement("td");
      del.append(button("Delete", async () => {
        await api("accesstokens/delete", { token: t.token }).catch((e) => toast(e.message));
        loadIntegrations();
      }, "danger"));
      tr.append(cell(t.name), cell(t.scopes.join(", ")), cell(when(t.timestamp)),
        cell(when(t.lastUsed)), del);
      return tr;
    }));
    $("webhooks").replaceChildren(...webhooks.map((w) => {
      const tr = document.createElement("tr");
      const del = document.createElement("td");
      del.append(button("Delete", async () => {
        await api("webhooks/delete", { id: w.id }).catch((e) => toast(e.message));
        loadIntegrations();
      }, "danger"));
      tr.append(cell(w.url), cell(w.events.join(", ")), cell(when(w.timestamp)),
        cell(when(w.lastUsed)), del);
      return tr;
    }));
  }

  function wireIntegrations() {
    const fieldset = $("webhook-events");
    EVENTS.forEach((name) => {
      const label = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.name = "event";
      box.value = name;
      label.append(box, " " + name);
      fieldset.append(label);
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
    $("copy-token").addEventListener("click", () => {
      navigator.clipboard.writeText($("new-token-value").textContent).then(() => toast("Copied"),
        () => toast("Select the token and copy it"));
    });
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

  // -- logs ----------------------------------------------------------------------------
  function logItem(entry) {
    const li = document.createElement("li");
    li.className = entry.level;
    li.textContent = when(entry.time) + " [" + entry.level + "] " + entry.message;
    return li;
  }

  async function loadLogs() {
    const level = $("log-level").value;
    const entries = await api(level === "warning" || level === "error" ? "logs/warnings" : "logs");
    $("log-list").replaceChildren(...entries.filter((e) => !level || e.level === level)
      .reverse().map(logItem));
  }

  document.addEventListener("DOMContentLoaded", async () => {
    wireSettings();
    wireIntegrations();
    $("disconnect").addEventListener("click", async () => {
      try {
        const result = await api("disconnect", {});
        toast(result.message);
        loadDashboard();
      } catch (e) { toast(e.message); }
    });
    $("add-variant").addEventListener("click", () => {
      $("variants").append(variantRow({ framerate: 30, videoBitrate: 1200, audioBitrate: 128,
        cpuUsageLevel: 2, audioPassthrough: true }));
    });
    $("save-variants").addEventListener("click", async () => {
      try {
        await api("config/video/streamoutputvariants", { value: readVariants() });
        toast("Saved");
      } catch (e) { toast(e.message); }
    });
    $("log-level").addEventListener("change", () => loadLogs().catch((e) => toast(e.message)));
    $("refresh-logs").addEventListener("click", () => loadLogs().catch((e) => toast(e.message)));
    window.addEventListener("hashchange", showTab);
    try {
      config = await api("serverconfig");
      fillSettings();
    } catch (e) {
      toast(e.message);
    }
    showTab();
    setInterval(() => {
      if (!$("dashboard").hidden) loadDashboard().catch(() => {});
    }, 10000);
  });
})();
