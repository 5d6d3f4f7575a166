// Settings in sections (general, appearance, server, storage, video, integrations), one
// Save per section. A section saves the fields that changed, one admin API call each, and
// shows the server's refusal under the field it concerns; unsaved changes are marked and
// leaving the page with them asks first.
"use strict";

(function (A) {
  const { el, editors } = A;
  const CODECS = ["libx264", "h264_nvenc", "h264_vaapi", "h264_qsv", "h264_omx", "h264_v4l2m2m",
    "h264_videotoolbox"];

  const SECTIONS = [
    { id: "general", tab: "settings", title: "General", fields: [
      { key: "name", path: "name", label: "Server name", type: "text",
        read: (c) => c.instanceDetails.name },
      { key: "streamTitle", path: "streamtitle", label: "Stream title", type: "text",
        hint: "Shown above the video; changing it tells the chat",
        read: (c) => c.instanceDetails.streamTitle },
      { key: "summary", path: "serversummary", label: "Summary", type: "textarea",
        read: (c) => c.instanceDetails.summary },
      { key: "tags", path: "tags", label: "Tags", type: "list", hint: "Separated by commas",
        read: (c) => c.instanceDetails.tags },
      { key: "nsfw", path: "nsfw", label: "Not safe for work (marked so in the directory)",
        type: "bool", read: (c) => c.instanceDetails.nsfw },
      { key: "offlineMessage", path: "offlinemessage", label: "Offline message",
        type: "textarea", hint: "Shown on the viewer page while nobody is live",
        read: (c) => c.offlineMessage },
    ] },
    { id: "appearance", tab: "settings", title: "Appearance", fields: [
      { key: "logo", path: "logo", label: "Logo", type: "logo", hint: "A path on this server, or upload an image",
        read: (c) => c.instanceDetails.logo },
      { key: "pageContent", path: "pagecontent", label: "Page content (Markdown)", type: "markdown",
        read: (c) => c.instanceDetails.extraPageContent },
      { key: "customStyles", path: "customstyles", label: "Custom CSS for the viewer page",
        type: "textarea", read: (c) => c.instanceDetails.customStyles },
    ] },
    { id: "server", tab: "settings", title: "Server", fields: [
      { key: "streamKey", path: "key", label: "Stream key", type: "streamKey",
        hint: "Your encoder sends it; it is also the admin password (user admin)",
        read: (c) => c.streamKey },
      { key: "webServerPort", path: "webserverport", label: "Web port", type: "int",
        hint: "Takes effect after a restart", read: (c) => c.webServerPort },
      { key: "rtmpServerPort", path: "rtmpserverport", label: "RTMP port", type: "int",
        hint: "Takes effect after a restart", read: (c) => c.rtmpServerPort },
      { key: "ffmpegPath", path: "ffmpegpath", label: "ffmpeg path", type: "text",
        hint: "Checked by running it", read: (c) => c.ffmpegPath },
    ] },
    { id: "storage", tab: "settings", title: "Storage", fields: [
      { key: "s3", path: "s3", label: "S3-compatible storage", type: "s3", read: (c) => c.s3 },
    ] },
    { id: "video", tab: "video", title: "Video", fields: [
      { key: "latencyLevel", path: "video/streamlatencylevel", label: "Latency", type: "latency",
        read: (c) => ({ level: c.videoSettings.latencyLevel,
          low: !!(c.videoSettings.lowLatency ?? c.lowLatency) }),
        save: saveLatency },
      { key: "videoCodec", path: "video/codec", label: "Encoder", type: "codec",
        hint: "Hardware encoders need matching hardware and an ffmpeg built with them",
        read: (c) => c.videoCodec },
      { key: "variants", path: "video/streamoutputvariants", label: "Output variants",
        type: "variants", hint: "Viewers' players switch between these by bandwidth",
        read: (c) => c.videoSettings.videoQualityVariants },
    ] },
    { id: "integrations", tab: "integrations", title: "Links and directory", fields: [
      { key: "socialHandles", path: "socialhandles", label: "Social links", type: "social",
        read: (c) => c.instanceDetails.socialHandles },
      { key: "serverUrl", path: "serverurl", label: "Public address of this server",
        type: "text", hint: "e.g. https://live.example.org; the directory links to it",
        read: (c) => c.yp.instanceUrl },
      { key: "directoryEnabled", path: "directoryenabled", label: "List this server in the Owncast directory",
        type: "bool", read: (c) => c.yp.enabled },
    ] },
  ];

  let config = null;
  const fields = {};

  /** The level and the low-latency mode are two settings: each posted when it changed. */
  async function saveLatency(value, original) {
    if (!original || value.low !== original.low) {
      await A.api("config/video/lowlatency", { value: value.low });
    }
    if (!original || value.level !== original.level) {
      await A.api("config/video/streamlatencylevel", { value: value.level });
    }
  }

  function simple(type) {
    const input = type === "textarea" || type === "markdown"
      ? el("textarea", { rows: type === "markdown" ? 8 : 4 })
      : el("input", { type: type === "int" ? "number" : type === "bool" ? "checkbox" : "text" });
    input.name = "value";
    return {
      node: input, input,
      get: () => type === "bool" ? input.checked : type === "int" ? Number(input.value)
        : type === "list" ? input.value.split(",").map((t) => t.trim()).filter(Boolean)
          : input.value,
      set: (v) => {
        if (type === "bool") input.checked = !!v;
        else if (type === "list") input.value = (v || []).join(", ");
        else input.value = v === undefined || v === null ? "" : v;
      },
      check: () => "",
    };
  }

  function editorFor(field, platforms) {
    switch (field.type) {
      case "social": return editors.socialHandles(platforms);
      case "s3": return editors.s3();
      case "variants": return editors.variants();
      case "latency": return editors.latency();
      case "streamKey": return editors.streamKey();
      case "codec": {
        const s = editors.select(CODECS.map((c) => [c, c]));
        s.name = "value";
        return { node: s, input: s, get: () => s.value, set: (v) => { s.value = v; }, check: () => "" };
      }
      default: return simple(field.type === "logo" ? "text" : field.type);
    }
  }

  function buildField(field, platforms) {
    const editor = editorFor(field, platforms);
    const error = el("p", { className: "error", role: "alert", id: editors.id("err") });
    const wrapper = el("div", { className: "field", dataset: { key: field.key, path: field.path } });
    const control = editor.input || editor.node.querySelector("input, select, textarea");
    const compound = !editor.input;
    if (compound) {
      // A group of controls: a fieldset with the label as its legend.
      wrapper.append(el("fieldset", {}, el("legend", { textContent: field.label }), editor.node));
    } else if (field.type === "bool") {
      control.id = editors.id("f");
      wrapper.classList.add("check");
      wrapper.append(control, el("label", { htmlFor: control.id, textContent: field.label }));
    } else {
      control.id = editors.id("f");
      wrapper.append(el("label", { htmlFor: control.id, textContent: field.label }), editor.node);
    }
    if (field.hint) {
      const hint = el("small", { className: "hint", id: editors.id("h"), textContent: field.hint });
      wrapper.append(hint);
      if (control) control.setAttribute("aria-describedby", hint.id + " " + error.id);
    } else if (control) control.setAttribute("aria-describedby", error.id);
    wrapper.append(error);
    if (field.type === "logo") wrapper.append(logoUpload(field));
    if (field.type === "markdown") wrapper.append(...previewParts(field));
    fields[field.key] = { ...field, editor, wrapper, error, original: null };
    return wrapper;
  }

  function logoUpload(field) {
    const file = el("input", { type: "file", id: "logo-file",
      accept: "image/png,image/jpeg,image/gif,image/webp,image/svg+xml" });
    file.addEventListener("change", () => {
      const chosen = file.files[0];
      if (!chosen) return;
      const reader = new FileReader();
      reader.onload = () => saveField(fields[field.key], reader.result).then(reload);
      reader.readAsDataURL(chosen);
    });
    return el("div", { className: "sub" }, el("label", { htmlFor: "logo-file",
      textContent: "Upload a new logo (saved at once)" }), file);
  }

  function previewParts(field) {
    const preview = el("div", { id: "page-preview", className: "page-content preview" });
    preview.hidden = true;
    const show = A.button("Save and preview", async () => {
      // The server renders and sanitizes: save, then show what viewers get.
      const f = fields[field.key];
      if (!(await saveField(f, f.editor.get()))) return;
      const rendered = await (await fetch("/api/config", { cache: "no-store" })).json();
      preview.innerHTML = rendered.extraPageContent;
      preview.hidden = false;
    });
    show.id = "preview-button";
    return [show, preview];
  }

  function changed(f) {
    return JSON.stringify(f.editor.get()) !== JSON.stringify(f.original);
  }

  function showError(f, message) {
    f.error.textContent = message || "";
    f.wrapper.classList.toggle("invalid", !!message);
    const control = f.editor.input;
    if (control) control.setAttribute("aria-invalid", message ? "true" : "false");
  }

  /** POSTs one setting; true when the server took it. */
  async function saveField(f, value) {
    try {
      if (f.save) await f.save(value, f.original);
      else await A.api("config/" + f.path, { value });
      showError(f, "");
      f.original = JSON.parse(JSON.stringify(value));
      return true;
    } catch (e) {
      showError(f, e.message);
      return false;
    }
  }

  function markDirty(section) {
    const dirty = section.fields.some((field) => changed(fields[field.key]));
    section.form.classList.toggle("dirty", dirty);
    section.form.querySelector(".dirty-note").textContent = dirty ? "Unsaved changes" : "";
    document.querySelectorAll("#tabs a").forEach((a) => {
      const tab = a.getAttribute("href").slice(1);
      a.classList.toggle("unsaved", SECTIONS.some((s) => s.tab === tab && s.form &&
        s.form.classList.contains("dirty")));
    });
  }

  async function saveSection(section) {
    const pending = section.fields.map((field) => fields[field.key]).filter(changed);
    if (!pending.length) {
      A.toast("Nothing changed in " + section.title);
      return;
    }
    let failed = 0;
    let keyChanged = false;
    for (const f of pending) {
      const problem = f.editor.check();
      if (problem) {
        showError(f, problem);
        failed += 1;
        continue;
      }
      if (await saveField(f, f.editor.get())) keyChanged = keyChanged || f.key === "streamKey";
      else failed += 1;
    }
    markDirty(section);
    if (keyChanged) {
      A.toast("Saved. The stream key is also the admin password: reload and log in with it.");
      return;
    }
    A.toast(failed ? `${failed} setting(s) in ${section.title} not saved: see the message below it`
      : `${section.title} saved`);
    if (!failed) await reload(section);
  }

  /** Fetches the config again and refills ``only`` (a section) or every section. */
  async function reload(only) {
    config = await A.api("serverconfig");
    SECTIONS.filter((s) => !only || !only.fields || s === only).forEach((section) => {
      section.fields.forEach((field) => {
        const f = fields[field.key];
        f.editor.set(field.read(config));
        f.original = JSON.parse(JSON.stringify(f.editor.get()));
        showError(f, "");
      });
      markDirty(section);
    });
  }

  async function build() {
    const platforms = await fetch("/api/socialplatforms").then((r) => r.json()).catch(() => ({}));
    SECTIONS.forEach((section) => {
      const heading = el("h3", { id: "section-" + section.id + "-heading", textContent: section.title });
      const save = el("button", { type: "submit", className: "save", textContent: "Save " +
        section.title.toLowerCase() });
      const form = el("form", { className: "section", id: "section-" + section.id, noValidate: true,
        "aria-labelledby": heading.id, dataset: { section: section.id } }, heading,
        ...section.fields.map((field) => buildField(field, platforms)),
        el("div", { className: "actions" }, save,
          el("span", { className: "dirty-note", role: "status" })));
      section.form = form;
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        save.disabled = true;
        saveSection(section).catch((e) => A.toast(e.message)).finally(() => { save.disabled = false; });
      });
      const check = () => markDirty(section);
      form.addEventListener("input", check);
      form.addEventListener("change", check);
      form.addEventListener("click", () => setTimeout(check));
      A.$("sections-" + section.tab).append(form);
    });
    await reload();
    const codecs = config.supportedCodecs && config.supportedCodecs.length
      ? config.supportedCodecs : CODECS;
    const select = fields.videoCodec.editor.input;
    [...select.options].forEach((o) => { o.hidden = o.disabled = !codecs.includes(o.value); });
    window.addEventListener("beforeunload", (event) => {
      if (document.querySelector("form.section.dirty")) {
        event.preventDefault();
        event.returnValue = "";
      }
    });
  }

  A.settings = { build, reload, fields, SECTIONS };
})(window.OwncastAdmin);
