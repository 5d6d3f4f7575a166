// Past broadcasts: the list (/recordings/), a recording with its player, quality menu,
// clips and chat replay (/recordings/<id>), and a clip (/recordings/clips/<id>).
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);

  function duration(seconds) {
    const s = Math.round(seconds);
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const pad = (n) => String(n).padStart(2, "0");
    return h ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
  }

  function when(iso) {
    return iso ? new Date(iso).toLocaleString() : "";
  }

  async function getJson(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    const body = await response.json();
    if (!response.ok) throw new Error(body.message || response.statusText);
    return body;
  }

  function fail(error) {
    $("error").textContent = String(error.message || error);
    $("error").hidden = false;
  }

  // -- the list ---------------------------------------------------------------------
  async function showList() {
    $("list-view").hidden = false;
    const recordings = await getJson("/api/recordings/");
    $("empty").hidden = recordings.length > 0;
    const list = $("recordings");
    for (const r of recordings) {
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.href = r.url;
      const img = document.createElement("img");
      img.src = r.thumbnail;
      img.alt = "";
      img.loading = "lazy";
      img.addEventListener("error", () => img.removeAttribute("src"));
      const meta = document.createElement("div");
      meta.className = "meta";
      const name = document.createElement("div");
      name.className = "name";
      name.textContent = r.title || "Untitled broadcast";
      const date = document.createElement("div");
      date.className = "date";
      date.textContent = `${when(r.startTime)} · ${duration(r.duration)}`;
      meta.append(name, date);
      if (r.live) {
        const badge = document.createElement("span");
        badge.className = "badge";
        badge.textContent = "LIVE";
        name.append(" ", badge);
      }
      link.append(img, meta);
      item.append(link);
      list.append(item);
    }
  }

  // -- the player -------------------------------------------------------------------
  function play(video, source, qualities) {
    if (window.Hls && window.Hls.isSupported()) {
      const hls = new window.Hls({ backBufferLength: 60 });
      window.recordingPlayer = hls;
      hls.on(window.Hls.Events.MANIFEST_PARSED, (_, data) => {
        if (!qualities) return;
        data.levels.forEach((level, index) => {
          const label = level.height ? `${level.height}p` : `${Math.round(level.bitrate / 1000)} kbit/s`;
          qualities.append(new Option(label, String(index)));
        });
      });
      hls.on(window.Hls.Events.ERROR, (_, data) => {
        if (data.fatal && data.type === window.Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
      });
      if (qualities) {
        qualities.addEventListener("change", () => {
          hls.currentLevel = Number(qualities.value);
        });
      }
      hls.loadSource(source);
      hls.attachMedia(video);
    } else {
      video.src = source;
    }
  }

  function chatReplay(video, messages) {
    const list = $("chat");
    // Bodies are shown as the live chat shows them (chatview.js: emoji, safe links).
    const emoji = new Map();
    fetch("/api/emoji").then((r) => r.json())
      .then((items) => items.forEach((item) => emoji.set(item.name, item.emoji)))
      .catch(() => {});
    let shown = 0;
    const render = () => {
      const now = video.currentTime;
      if (shown > 0 && messages[shown - 1].offset > now) {
        list.replaceChildren();  // seeked back
        shown = 0;
      }
      while (shown < messages.length && messages[shown].offset <= now) {
        const m = messages[shown++];
        const item = document.createElement("li");
        if (m.author) {
          const author = document.createElement("span");
          author.className = "author";
          author.textContent = m.author;
          item.append(author);
        }
        const body = document.createElement("span");
        window.owncastChatView.render(body, m.body || "", emoji); // sanitized by the server
        item.append(body);
        list.append(item);
        list.parentElement.scrollTop = list.parentElement.scrollHeight;
      }
    };
    video.addEventListener("timeupdate", render);
    video.addEventListener("seeked", render);
  }

  function clipItem(clip) {
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = clip.url;
    link.textContent = `${clip.title} (${duration(clip.duration)} from ${duration(clip.start)})`;
    const mp4 = document.createElement("a");
    mp4.href = clip.download;
    mp4.textContent = "MP4";
    mp4.download = "";
    item.append(link, " · ", mp4);
    return item;
  }

  async function showRecording(id) {
    $("watch-view").hidden = false;
    const r = await getJson(`/api/recordings/${id}`);
    document.title = r.title || "Past broadcast";
    $("title").textContent = r.title || "Untitled broadcast";
    $("when").textContent = `${when(r.startTime)} · ${duration(r.duration)}` +
      (r.peakViewers ? ` · ${r.peakViewers} viewers at most` : "");
    const video = $("video");
    video.poster = r.thumbnail;
    play(video, r.playlist, $("quality"));
    if (r.download) {
      $("download").href = r.download;
      $("download").hidden = false;
    }
    $("clips").replaceChildren(...r.clips.map(clipItem));
    // Anyone may clip while the owner allows it (the recordings setting's viewerClips).
    const form = $("clip-form");
    form.hidden = !r.viewerClips;
    $("clip-mark").addEventListener("click", () => {
      $("clip-start").value = Math.max(0, video.currentTime - 30).toFixed(1);
      $("clip-end").value = video.currentTime.toFixed(1);
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      $("clip-result").textContent = "Making the clip…";
      const submit = form.querySelector("button[type=submit]");
      submit.disabled = true;
      try {
        // No credentials: the server limits how often an address (and everyone) may clip,
        // and answers 403 when clips are off, 429 with the wait when past a limit.
        const response = await fetch("/api/recordings/clip", {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "application/json" },
          credentials: "omit",
          body: JSON.stringify({
            id,
            start: Number($("clip-start").value),
            end: Number($("clip-end").value),
          }),
        });
        const body = await response.json();
        if (!response.ok) throw new Error(body.message || response.statusText);
        $("clip-result").textContent = "";
        $("clips").append(clipItem(body));
      } catch (error) {
        $("clip-result").textContent = String(error.message || error);
      } finally {
        submit.disabled = false;
      }
    });
    chatReplay(video, await getJson(`/api/recordings/${id}/chat`));
  }

  async function showClip(id) {
    $("clip-view").hidden = false;
    const clip = await getJson(`/api/recordings/clips/${id}`);
    document.title = clip.title;
    $("clip-title").textContent = clip.title;
    $("clip-video").src = clip.download;
    $("clip-download").href = clip.download;
    $("clip-source").href = `/recordings/${clip.recordingId}`;
  }

  const path = window.location.pathname.replace(/\/+$/, "");
  const clip = path.match(/^\/recordings\/clips\/([0-9]+-[0-9]+)$/);
  const recording = path.match(/^\/recordings\/([0-9]+)$/);
  (clip ? showClip(clip[1]) : recording ? showRecording(recording[1]) : showList()).catch(fail);
})();
