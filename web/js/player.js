// The video player: hls.js where Media Source Extensions exist, native HLS otherwise,
// a quality menu over the variants, and an offline state that turns live by itself.
"use strict";

(function () {
  const SOURCE = "/hls/stream.m3u8";
  const RETRY_MS = 3000;
  const $ = (id) => document.getElementById(id);

  const player = {
    online: false,
    hls: null,

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
      if (window.Hls && window.Hls.isSupported()) {
        // lowLatencyMode only acts on LL-HLS playlists (the server's low-latency mode); up
        // to 1.5x speed brings a player that fell behind back to its target latency.
        const hls = new window.Hls({
          lowLatencyMode: true, maxLiveSyncPlaybackRate: 1.5, backBufferLength: 30,
        });
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
  });
  window.owncastPlayer = player;
})();
