// Structured editors for the settings that are not a single text box: social links,
// S3 storage, stream output variants, the latency level and the stream key. Each
// returns { node, get(), set(value), check() } where check() gives a message or "".
"use strict";

(function (A) {
  const { el } = A;
  let uid = 0;
  const id = (stem) => `${stem}-${++uid}`;

  function labelled(text, control, hint) {
    control.id = control.id || id("f");
    const parts = [el("label", { htmlFor: control.id, textContent: text }), control];
    if (hint) {
      const h = el("small", { className: "hint", id: id("h"), textContent: hint });
      control.setAttribute("aria-describedby", h.id);
      parts.push(h);
    }
    return el("div", { className: "sub" }, ...parts);
  }

  function select(options, value) {
    const s = el("select");
    options.forEach(([v, text]) => s.append(el("option", { value: String(v), textContent: text })));
    if (value !== undefined) s.value = String(value);
    return s;
  }

  function httpUrl(text) {
    try {
      const url = new URL(text);
      return url.protocol === "http:" || url.protocol === "https:" ? "" : "must start with https://";
    } catch (e) {
      return "is not a full address (https://…)";
    }
  }

  // -- social links --------------------------------------------------------------------
  /** A small badge standing for a platform: its initials on a colour of its own. */
  function badge(name, icon) {
    if (icon) {
      const img = el("img", { className: "pf-icon image", src: icon, alt: "", width: 30, height: 30 });
      img.addEventListener("error", () => img.replaceWith(badge(name)));
      return img;
    }
    let hash = 0;
    for (const c of name) hash = (hash * 31 + c.charCodeAt(0)) % 360;
    const b = el("span", { className: "pf-icon", textContent: (name || "?").slice(0, 2),
      "aria-hidden": "true" });
    b.dataset.hue = String(hash % 12);
    return b;
  }

  function socialHandles(platforms) {
    const list = el("ul", { className: "rows" });
    const names = Object.entries(platforms).map(([key, p]) => [key, p.platform])
      .sort((a, b) => a[1].localeCompare(b[1]));

    function row(handle) {
      const choice = select(names, handle.platform);
      if (handle.platform && !platforms[handle.platform]) {
        choice.append(el("option", { value: handle.platform, textContent: handle.platform }));
        choice.value = handle.platform;
      }
      choice.setAttribute("aria-label", "Platform");
      const iconOf = () => badge(choice.selectedOptions[0] ? choice.selectedOptions[0].text : "",
        (platforms[choice.value] || {}).icon);
      const icon = iconOf();
      const url = el("input", { type: "url", value: handle.url || "", placeholder: "https://…",
        className: "handle-url" });
      url.setAttribute("aria-label", "Link address");
      const error = el("p", { className: "error", role: "alert" });
      const li = el("li", { className: "handle" }, el("span", { className: "icon-slot" }), choice,
        url, A.button("Remove", () => { li.remove(); list.dispatchEvent(new Event("input", { bubbles: true })); }),
        error);
      li.querySelector(".icon-slot").append(icon);
      choice.addEventListener("change", () => {
        li.querySelector(".icon-slot").replaceChildren(iconOf());
      });
      return li;
    }

    const add = A.button("Add a link", () => {
      list.append(row({ platform: names[0] ? names[0][0] : "", url: "" }));
      list.lastChild.querySelector("input").focus();
      list.dispatchEvent(new Event("input", { bubbles: true }));
    });
    return {
      node: el("div", {}, list, add),
      get: () => [...list.children].map((li) => ({
        platform: li.querySelector("select").value, url: li.querySelector("input").value.trim(),
      })),
      set: (handles) => list.replaceChildren(...(handles || []).map(row)),
      check: () => {
        let first = "";
        [...list.children].forEach((li, i) => {
          const problem = httpUrl(li.querySelector("input").value.trim());
          const message = problem ? `Link ${i + 1} ${problem}` : "";
          li.querySelector(".error").textContent = message;
          li.querySelector("input").setAttribute("aria-invalid", problem ? "true" : "false");
          first = first || message;
        });
        return first;
      },
    };
  }

  // -- S3 ------------------------------------------------------------------------------
  const S3_FIELDS = [
    ["endpoint", "Endpoint", "url", "The service's address, e.g. https://s3.eu-central-1.amazonaws.com"],
    ["bucket", "Bucket", "text", ""],
    ["region", "Region", "text", "Empty means us-east-1"],
    ["accessKey", "Access key", "text", ""],
    ["secret", "Secret key", "password", ""],
    ["servingEndpoint", "Serving address (optional)", "url",
      "A CDN in front of the bucket; viewers fetch video from it"],
  ];

  function s3() {
    const enabled = el("input", { type: "checkbox" });
    const inputs = {};
    const parts = [el("div", { className: "sub check" }, enabled,
      el("label", { htmlFor: enabled.id = id("s3"), textContent: "Store video in S3-compatible storage" }))];
    S3_FIELDS.forEach(([key, text, type, hint]) => {
      inputs[key] = el("input", { type, autocomplete: "off", spellcheck: false });
      parts.push(labelled(text, inputs[key], hint));
    });
    inputs.acl = select([["", "None (the bucket's policy decides)"], ["public-read", "public-read"],
      ["private", "private"]]);
    parts.push(labelled("Object ACL", inputs.acl, "Viewers must be able to read the segments"));
    const status = el("p", { className: "test-result", role: "status" });
    const test = A.button("Test connection", async () => {
      status.className = "test-result";
      status.textContent = "Uploading a probe object…";
      try {
        const result = await A.api("config/s3/test", { value: editor.get() });
        status.classList.add(result.success ? "good" : "bad");
        status.textContent = (result.success ? "Works: " : "Failed: ") + result.message;
      } catch (e) {
        status.classList.add("bad");
        status.textContent = "Failed: " + e.message;
      }
    });
    test.classList.add("s3-test");
    parts.push(el("div", { className: "sub" }, test, status));
    const editor = {
      node: el("div", { className: "grid-fields" }, ...parts),
      get: () => {
        const value = { enabled: enabled.checked };
        Object.entries(inputs).forEach(([key, input]) => { value[key] = input.value.trim(); });
        return value;
      },
      set: (value) => {
        value = value || {};
        enabled.checked = !!value.enabled;
        Object.entries(inputs).forEach(([key, input]) => { input.value = value[key] || ""; });
      },
      check: () => {
        for (const key of ["endpoint", "servingEndpoint"]) {
          const text = inputs[key].value.trim();
          const problem = text ? httpUrl(text) : "";
          if (problem) return `${key === "endpoint" ? "Endpoint" : "Serving address"} ${problem}`;
        }
        return "";
      },
    };
    return editor;
  }

  // -- stream output variants ----------------------------------------------------------
  const PRESETS = {
    passthrough: { label: "Passthrough: the source as sent, no re-encoding",
      v: { videoPassthrough: true, audioPassthrough: true, scaledWidth: 0, scaledHeight: 0 } },
    source: { label: "Source size, re-encoded", v: { videoPassthrough: false, scaledWidth: 0,
      scaledHeight: 0, videoBitrate: 3000, framerate: 30 } },
    "1080p": { label: "1080p (1920 × 1080)", v: { videoPassthrough: false, scaledWidth: 0,
      scaledHeight: 1080, videoBitrate: 4500, framerate: 30 } },
    "720p": { label: "720p (1280 × 720)", v: { videoPassthrough: false, scaledWidth: 0,
      scaledHeight: 720, videoBitrate: 2500, framerate: 30 } },
    "480p": { label: "480p (854 × 480)", v: { videoPassthrough: false, scaledWidth: 0,
      scaledHeight: 480, videoBitrate: 1200, framerate: 30 } },
    "360p": { label: "360p (640 × 360)", v: { videoPassthrough: false, scaledWidth: 0,
      scaledHeight: 360, videoBitrate: 800, framerate: 30 } },
    custom: { label: "Custom size", v: {} },
  };
  const CPU = [[0, "0 · least CPU, lowest quality (ultrafast)"], [1, "1 · superfast"],
    [2, "2 · balanced (veryfast)"], [3, "3 · faster"], [4, "4 · best quality, most CPU (fast)"]];
  const FPS = [[24, "24 fps"], [25, "25 fps"], [30, "30 fps"], [50, "50 fps"], [60, "60 fps"]];
  const AUDIO = [[0, "Copy the source's audio"], [64, "64 kbit/s"], [96, "96 kbit/s"],
    [128, "128 kbit/s"], [160, "160 kbit/s"], [192, "192 kbit/s"]];

  function presetOf(v) {
    if (v.videoPassthrough) return "passthrough";
    if (!v.scaledWidth && !v.scaledHeight) return "source";
    const match = Object.entries(PRESETS).find(([key, p]) => key !== "source" &&
      key !== "passthrough" && p.v.scaledHeight === v.scaledHeight && !v.scaledWidth);
    return match ? match[0] : "custom";
  }

  /** The label the server makes for a variant without a name (settings.variant_name):
   * the server config fills it in, so it is left out here rather than frozen as a name. */
  function autoName(v) {
    const kbps = v.videoBitrate || 0;
    const rate = kbps <= 0 ? "" : kbps < 1000 ? `${kbps}Kbps` : kbps % 1000 === 0
      ? `${kbps / 1000}Mbps` : `${(kbps / 1000).toFixed(1)}Mbps`;
    const w = v.scaledWidth || 0, h = v.scaledHeight || 0;
    if (v.videoPassthrough) return "Source";
    if (w === 1080 && h === 720) return `720p @${rate}`;
    if (w === 1920 && h === 1080) return `1080p @${rate}`;
    if (h) return `${h}h`;
    if (w) return `${w}w`;
    return `${rate}@${v.framerate || 0}fps`;
  }

  function variantCard(v, index) {
    const preset = select(Object.entries(PRESETS).map(([k, p]) => [k, p.label]), presetOf(v));
    const width = el("input", { type: "number", min: 0, step: 2, value: v.scaledWidth || 0 });
    const height = el("input", { type: "number", min: 0, step: 2, value: v.scaledHeight || 0 });
    const bitrate = el("input", { type: "range", min: 200, max: 8000, step: 100,
      value: v.videoBitrate || 1200 });
    const bitrateOut = el("output");
    const fps = select(FPS, v.framerate || 30);
    const cpu = select(CPU, v.cpuUsageLevel || 0);
    const audio = select(AUDIO, v.audioPassthrough ? 0 : v.audioBitrate || 128);
    const name = el("input", { type: "text", maxLength: 100,
      value: v.name && v.name !== autoName(v) ? v.name : "",
      placeholder: "made from the settings" });
    const size = el("div", { className: "sub size" }, labelled("Width (px, 0 = in proportion)", width),
      labelled("Height (px, 0 = source)", height));
    const encode = el("div", { className: "encode" }, size,
      labelled("Video bitrate", bitrate, ""), labelled("Frame rate", fps),
      labelled("CPU use and quality", cpu, "Higher levels look better at the same bitrate"));
    bitrate.parentNode.append(bitrateOut);
    const title = el("h4", { textContent: `Variant ${index + 1}` });
    const card = el("li", { className: "variant" }, title, labelled("Preset", preset), encode,
      labelled("Audio", audio), labelled("Name shown to viewers (optional)", name));
    card.append(A.button("Remove this variant", () => {
      const list = card.parentNode;
      card.remove();
      list.dispatchEvent(new Event("input", { bubbles: true }));
    }));
    function refresh() {
      const kind = preset.value;
      encode.hidden = kind === "passthrough";
      size.hidden = kind !== "custom";
      bitrateOut.textContent = `${bitrate.value} kbit/s` + (bitrate.value >= 4000 ? " (1080p class)"
        : bitrate.value >= 2000 ? " (720p class)" : bitrate.value >= 1000 ? " (480p class)" : " (small screens)");
    }
    preset.addEventListener("change", () => {
      const p = PRESETS[preset.value].v;
      if ("scaledWidth" in p) width.value = p.scaledWidth;
      if ("scaledHeight" in p) height.value = p.scaledHeight;
      if (p.videoBitrate) bitrate.value = p.videoBitrate;
      if (p.framerate) fps.value = String(p.framerate);
      if (p.audioPassthrough) audio.value = "0";
      refresh();
    });
    bitrate.addEventListener("input", refresh);
    refresh();
    card.read = () => ({
      name: name.value.trim(),
      videoPassthrough: preset.value === "passthrough",
      audioPassthrough: audio.value === "0",
      videoBitrate: Number(bitrate.value),
      audioBitrate: Number(audio.value),
      scaledWidth: preset.value === "custom" ? Number(width.value) : 0,
      scaledHeight: preset.value === "custom" ? Number(height.value)
        : PRESETS[preset.value].v.scaledHeight || 0,
      framerate: Number(fps.value),
      cpuUsageLevel: Number(cpu.value),
    });
    return card;
  }

  function variants() {
    const list = el("ol", { className: "variants" });
    const renumber = () => [...list.children].forEach((li, i) => {
      li.querySelector("h4").textContent = `Variant ${i + 1}`;
    });
    list.addEventListener("input", renumber);
    const add = A.button("Add a variant", () => {
      list.append(variantCard({ ...PRESETS["480p"].v, cpuUsageLevel: 1, audioPassthrough: true },
        list.children.length));
      list.dispatchEvent(new Event("input", { bubbles: true }));
    });
    return {
      node: el("div", {}, list, add),
      get: () => [...list.children].map((li) => li.read()),
      set: (value) => list.replaceChildren(...(value || []).map(variantCard)),
      check: () => (list.children.length ? "" : "Keep at least one variant"),
    };
  }

  // -- latency -------------------------------------------------------------------------
  // Segment length per level (server's LATENCY_LEVELS); "first picture" is the measured
  // publish-to-playable time (bench/README.md, playable benchmark).
  const LATENCY = [[0, 1, 1.4], [1, 2, 1.9], [2, 3, 2.8], [3, 4, 4.0], [4, 5, 4.8]];
  // Behind live, glass to glass, per level and in the low-latency mode: the p50s of
  // README's "Low latency" table (bench/glass.py, the viewer page's hls.js in Chromium)
  // to one decimal, half to even.
  const BEHIND = [2.2, 6.2, 9.2, 12.3, 15.2];
  const BEHIND_LOW = 1.2;

  /** The five levels and, beside them, the low-latency mode (LL-HLS, its own setting):
   * the value is { level, low }; choosing the mode keeps the level for when it is off. */
  function latency() {
    const name = id("latency");
    const group = el("div", { className: "choices", role: "radiogroup" });
    let level = 0;
    LATENCY.forEach(([n, segment, first]) => {
      const radio = el("input", { type: "radio", name, value: String(n), id: id("lat") });
      const words = n === 0 ? "lowest delay, least buffering" : n === 4
        ? "most buffering, steadiest on poor connections" : "";
      group.append(el("div", { className: "choice" }, radio, el("label", { htmlFor: radio.id },
        el("strong", { textContent: `Level ${n}` }),
        ` · about ${BEHIND[n]} s behind live (${segment} s segments); first picture ` +
        `${first} s after going live` + (words ? ` · ${words}` : ""))));
    });
    const low = el("input", { type: "radio", name, value: "low", id: id("lat") });
    group.append(el("div", { className: "choice" }, low, el("label", { htmlFor: low.id },
      el("strong", { textContent: "Low-latency mode (LL-HLS)" }),
      ` · about ${BEHIND_LOW} s behind live; players without LL-HLS play whole segments`)));
    return {
      node: group,
      get: () => {
        const checked = group.querySelector("input:checked");
        if (!checked) return { level, low: false };
        return checked.value === "low" ? { level, low: true }
          : { level: Number(checked.value), low: false };
      },
      set: (value) => {
        level = value.level;
        group.querySelector(`input[value="${value.low ? "low" : value.level}"]`).checked = true;
      },
      check: () => "",
    };
  }

  // -- the stream key ------------------------------------------------------------------
  function streamKey() {
    const input = el("input", { type: "password", autocomplete: "off", spellcheck: false,
      name: "value", className: "key" });
    const reveal = A.button("Reveal", () => {
      const hidden = input.type === "password";
      input.type = hidden ? "text" : "password";
      reveal.textContent = hidden ? "Hide" : "Reveal";
      reveal.setAttribute("aria-pressed", String(hidden));
    });
    reveal.setAttribute("aria-pressed", "false");
    reveal.classList.add("reveal");
    const generate = A.button("Generate a new one", () => {
      const bytes = crypto.getRandomValues(new Uint8Array(24));
      input.value = btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_");
      input.dispatchEvent(new Event("input", { bubbles: true }));
    });
    return {
      node: el("div", { className: "key-row" }, input, reveal,
        A.button("Copy", () => A.copy(input.value)), generate),
      input,
      get: () => input.value,
      set: (value) => { input.value = value || ""; },
      check: () => (input.value.trim() ? "" : "The stream key must not be empty"),
    };
  }

  A.editors = { socialHandles, s3, variants, latency, streamKey, labelled, select, httpUrl, id };
})(window.OwncastAdmin);
