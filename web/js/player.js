// The video player: hls.js where Media Source Extensions exist (set up by hlsconfig.js),
// native HLS otherwise, a quality menu over the variants, how far behind live the viewer
// is with a "Jump to live" button when noticeably behind, and an offline state that turns
// live by itself.
"use strict";

(function () {
  const SOURCE = "/hls/stream.m3u8";
  const RETRY_MS = 3000;
  const BEHIND_EVERY_MS = 500;
  // Native HLS says nothing of its target: late is this far past where it settled.
  const NATIVE_LATE_S = 4;
  const $ = (id) => document.getElementById(id);

  const player = {
    online: false,
    hls: null,
    timer: null,
    nativeSettled: null,

    setOnline(online) {
      if (online === this.online) return;
      this.online = online;
      $("offline").hidden = online;
      if (online) this.start();
      else this.stop();
    },

    start() {
      const video = $("video");
      video.poster = "/hls/thumbnail.jpg";
      this.timer = setInterval(() => this.showBehind(), BEHIND_EVERY_MS);
      if (window.Hls && window.Hls.isSupported()) {
        const hls = window.owncastHls.create(window.Hls);
        this.hls = hls;
        hls.on(window.Hls.Events.MANIFEST_PARSED, (_, data) => {
          this.fillQualities(data.levels);
          video.play().catch(() => {});
        });
        hls.on(window.Hls.Events.ERROR, (_, data) => {
          if (!data.fatal) return;
          if (data.type === window.Hls.ErrorTypes.MEDIA_ERROR) {
            hls.recoverMediaError();
          } else {
            // The playlist may not exist yet right after the stream starts.
            this.stop();
            setTimeout(() => this.online && this.start(), RETRY_MS);
          }
        });
        hls.loadSource(SOURCE);
        hls.attachMedia(video);
      } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
        video.src = SOURCE;
        video.play().catch(() => {});
      }
    },

    stop() {
      clearInterval(this.timer);
      this.timer = null;
      this.nativeSettled = null;
      $("behind").hidden = true;
      $("jump-live").hidden = true;
      if (this.hls) {
        this.hls.destroy();
        this.hls = null;
      }
      const video = $("video");
      video.removeAttribute("src");
      video.load();
      this.showPoster();
      const select = $("quality");
      select.replaceChildren(new Option("Auto", "-1"));
      select.disabled = true;
    },

    // Offline, the poster is the last frame the stream left (its thumbnail) when there
    // is one, else the logo.
    showPoster() {
      const video = $("video");
      const probe = new Image();
      probe.onload = () => { if (!this.online) video.poster = probe.src; };
      probe.onerror = () => { if (!this.online) video.poster = "/img/logo.svg"; };
      probe.src = "/hls/thumbnail.jpg?t=" + Date.now();
    },

    /** How far behind live: `latency` (seconds behind the newest media the playlist
     * lists, as hls.latency but also while paused), `late` (how far past where the player
     * means to be) and `slack` (how late still counts as live), or null before playback. */
    behind() {
      const video = $("video");
      if (video.readyState < 1) return null;
      if (this.hls) {
        const details = this.hls.latestLevelDetails;
        if (!details || !details.live) return null;
        const latency = details.edge + details.age - video.currentTime;
        const late = latency - (this.hls.targetLatency || 0);
        // Playing, hls.js catches up by itself within about a target duration; paused,
        // the viewer is late once a segment more has gone by.
        return { latency, late, slack: (video.paused ? 1 : 2) * details.targetduration };
      }
      const seekable = video.seekable;
      if (!seekable.length) return null;
      const latency = seekable.end(seekable.length - 1) - video.currentTime;
      if (this.nativeSettled === null && !video.paused) this.nativeSettled = latency;
      return { latency, late: latency - (this.nativeSettled ?? latency), slack: NATIVE_LATE_S };
    },

    showBehind() {
      const found = this.behind();
      const text = $("behind"), jump = $("jump-live");
      text.hidden = found === null;
      const late = found !== null && found.late > found.slack;
      if (found !== null) {
        const seconds = Math.max(0, found.latency);
        // On a phone the words go (site.css) where the button beside says them.
        const words = document.createElement("span");
        words.className = "behind-words";
        words.textContent = " behind live";
        text.replaceChildren((seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)) + " s",
          words);
        text.classList.toggle("late", late);
      }
      if (!late && document.activeElement === jump) $("video").focus();
      jump.hidden = !late;
    },

    /** Back to the live edge (hls.js's liveSyncPosition, native: the seekable end), playing. */
    jumpToLive() {
      const video = $("video");
      if (this.hls) {
        const position = this.hls.liveSyncPosition;
        if (position !== null) video.currentTime = position;
      } else if (video.seekable.length) {
        video.currentTime = video.seekable.end(video.seekable.length - 1);
      }
      video.play().catch(() => {});
      this.showBehind();
    },

    fillQualities(levels) {
      const select = $("quality");
      const options = [new Option("Auto", "-1")];
      levels.forEach((level, index) => {
        const label = (level.height ? level.height + "p" : "Variant " + (index + 1)) +
          (level.bitrate ? " · " + Math.round(level.bitrate / 1000) + " kbps" : "");
        options.push(new Option(label, String(index)));
      });
      select.replaceChildren(...options);
      select.disabled = false;
    },
  };

  document.addEventListener("DOMContentLoaded", () => {
    player.showPoster();
    $("quality").addEventListener("change", (event) => {
      if (player.hls) player.hls.currentLevel = Number(event.target.value);
    });
    $("jump-live").addEventListener("click", () => player.jumpToLive());
  });
  window.owncastPlayer = player;
})();
