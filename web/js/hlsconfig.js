// hls.js as the viewer page and the video embed set it up, in one place: bench/glass.py
// loads this same file, so the glass-to-glass figures are the page's.
"use strict";

(function () {
  // Segments this short (latency level 0's 1 s) are held two deep instead of three.
  const SHORT_SEGMENT_S = 1;

  window.owncastHls = {
    // lowLatencyMode: LL-HLS parts and PART-HOLD-BACK on the server's low-latency
    // playlists; on any live playlist it also lets hls.js play up to
    // maxLiveSyncPlaybackRate (1.5x) to get back to its target after falling behind.
    config: { lowLatencyMode: true, maxLiveSyncPlaybackRate: 1.5, backBufferLength: 30 },

    /** Seconds behind the newest listed media to play at, for a loaded playlist (hls.js
     * LevelDetails), or null to keep hls.js's own choice (LL-HLS: PART-HOLD-BACK).
     * hls.js holds three target durations; at 1 s segments two still leave a second of
     * buffer when the next segment is listed (hls.js counts from when it saw the playlist
     * grow), and hls.js adds a second to its target after any stall. Longer segments keep
     * three: owners pick those levels for buffering. */
    holdBack(details) {
      if (!details.live || details.partTarget) return null;
      const target = details.targetduration;
      return (target <= SHORT_SEGMENT_S ? 2 : 3) * target;
    },

    /** An hls.js player with `config` (and `extra` over it) that holds back per its
     * playlist. Set once per player: hls.js's setter also forgets past stalls. */
    create(Hls, extra) {
      const hls = new Hls(Object.assign({}, this.config, extra));
      hls.on(Hls.Events.LEVEL_LOADED, (_, data) => {
        const hold = this.holdBack(data.details);
        if (hold !== null && hls.config.liveSyncDuration !== hold) hls.targetLatency = hold;
      });
      return hls;
    },
  };
})();
