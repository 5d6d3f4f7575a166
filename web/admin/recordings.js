// The Recordings tab: past broadcasts with their sizes and clips, rename and delete, the
// disk they use and the free space left, and the recording setting (one whole object,
// with viewerClips: whether viewers may make clips).
"use strict";

(function (A) {
  const { el, $, api, cell, button } = A;

  /** "1.4 GiB", "230 MiB": a byte count for people. */
  function bytes(n) {
    if (n === null || n === undefined) return "unknown";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return `${i ? n.toFixed(1) : n} ${units[i]}`;
  }

  function titleCell(r) {
    const input = el("input", { type: "text", value: r.title || "", maxLength: 200,
      placeholder: "Untitled", "aria-label": `Title of the recording of ${A.when(r.startTime)}` });
    input.name = "title";
    const error = el("p", { className: "error", role: "alert" });
    const rename = button("Rename", async () => {
      try {
        await api("recordings/title", { id: r.id, title: input.value });
        A.toast("Renamed");
        await load();
      } catch (e) { error.textContent = e.message; }
    }, "rename");
    return el("td", { className: "rec-title" }, el("div", { className: "key-row" }, input, rename),
      error);
  }

  function linksCell(r) {
    const td = el("td", { className: "rec-links" },
      el("a", { href: r.url, textContent: "Page" }));
    if (r.download) td.append(" · ", el("a", { href: r.download, textContent: "MP4", download: "" }));
    return td;
  }

  function clipRows(r) {
    return r.clips.map((c) => el("tr", { className: "clip", dataset: { clip: c.id } },
      el("td", { className: "rec-title" }, el("span", { className: "muted", textContent: "Clip: " }),
        c.title || "Clip"),
      cell(A.when(c.createdAt ? c.createdAt * 1000 : null)),
      cell(A.duration((c.end || 0) - (c.start || 0))), cell(""), cell(c.size ? bytes(c.size) : ""),
      cell(""), el("td", {}, el("a", { href: c.url, textContent: "Page" }), " · ",
        el("a", { href: c.download, textContent: "MP4", download: "" })), cell("")));
  }

  const COLUMNS = ["Title", "Date", "Duration", "Peak viewers", "Size", "Clips", "Links", ""];

  /** Names each cell after its column, for the stacked layout of narrow screens. */
  function labelCells(tr) {
    [...tr.children].forEach((td, i) => { if (COLUMNS[i]) td.dataset.label = COLUMNS[i]; });
    return tr;
  }

  function row(r) {
    const remove = button("Delete", async () => {
      if (!window.confirm(`Delete "${r.title || r.id}" and its clips? This cannot be undone.`)) {
        return;
      }
      try {
        await api("recordings/delete", { id: r.id });
        A.toast("Deleted");
        await load();
      } catch (e) { A.toast(e.message); }
    }, "danger");
    const tr = el("tr", { className: "recording", dataset: { id: r.id } }, titleCell(r),
      cell(A.when(r.startTime)), cell(r.live ? "recording now" : A.duration(r.duration)),
      cell(String(r.peakViewers)), cell(bytes(r.size)), cell(String(r.clips.length)),
      linksCell(r), el("td", {}, remove));
    if (r.live) remove.disabled = true;
    return [tr, ...clipRows(r)].map(labelCells);
  }

  // -- the setting ---------------------------------------------------------------------
  function fillSettings(s) {
    const form = $("recordings-settings");
    form.elements.enabled.checked = !!s.enabled;
    form.elements.viewerClips.checked = s.viewerClips !== false;
    form.elements.variants.value = s.variants;
    form.elements.maxDays.value = s.maxDays;
    form.elements.maxGiB.value = s.maxGiB;
    form.elements.minFreeGiB.value = s.minFreeGiB;
  }

  async function saveSettings(event) {
    event.preventDefault();
    const form = event.target;
    const error = form.querySelector(".error");
    const value = { enabled: form.elements.enabled.checked,
      viewerClips: form.elements.viewerClips.checked, variants: form.elements.variants.value,
      maxDays: Number(form.elements.maxDays.value), maxGiB: Number(form.elements.maxGiB.value),
      minFreeGiB: Number(form.elements.minFreeGiB.value) };
    const save = form.querySelector("button.save");
    save.disabled = true;
    try {
      await api("config/recordings", { value });
      error.textContent = "";
      A.toast("Recording settings saved");
      await load();
    } catch (e) {
      error.textContent = e.message;
    } finally {
      save.disabled = false;
    }
  }

  async function load() {
    const data = await api("recordings");
    $("rec-now").textContent = data.recording ? "Recording now" : "Not recording";
    $("rec-now").classList.toggle("live", !!data.recording);
    $("rec-free").textContent = bytes(data.freeBytes);
    $("rec-used").textContent = bytes(data.usedBytes);
    $("rec-disk-full").hidden = !data.diskFull;
    $("rec-empty").hidden = data.recordings.length > 0;
    $("rec-table").hidden = !data.recordings.length;
    $("rec-list").replaceChildren(...data.recordings.flatMap(row));
    fillSettings(data.settings);
    document.body.dataset.recordings = String(data.recordings.length);
    return data;
  }

  /** The viewerClips checkbox, after "Record every broadcast" (the page's HTML predates it). */
  function addViewerClips() {
    const form = $("recordings-settings");
    if (form.elements.viewerClips) return;
    const input = el("input", { type: "checkbox", id: "rec-viewer-clips", name: "viewerClips",
      checked: true });
    const field = el("div", { className: "field check" }, input,
      el("label", { htmlFor: "rec-viewer-clips",
        textContent: "Viewers may make clips (each address one per 30 s and 10 an hour, " +
          "60 an hour in all)" }));
    form.elements.enabled.closest(".field").after(field);
  }

  function wire() {
    addViewerClips();
    $("recordings-settings").addEventListener("submit", (e) => {
      saveSettings(e).catch((err) => A.toast(err.message));
    });
  }

  A.recordings = { load, wire, bytes };
})(window.OwncastAdmin);
