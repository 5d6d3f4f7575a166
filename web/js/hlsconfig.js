// hls.js as the viewer page and the video embed set it up, in one place: bench/glass.py
// loads this same file, so the glass-to-glass figures are the page's.
"use strict";

(function () {
  // Segments this short (latency level 0's 1 s) are held two deep instead of three.
  const SHORT_SEGMENT_S = 1;
  // waitingLoader: first ask this long before the next segment is due, then every
  // RETRY_MS until it is listed.
  const EARLY_MS = 100;
  const RETRY_MS = 50;
  // ... holding a segment hls.js lacks only while this much stays buffered, and after a
  // hold that saw no newer segment, trying again only after this many reloads.
  const MIN_AHEAD_S = 0.6;
  const REPHASE_EVERY = 10;
  // ... and asking for a late segment (a publisher gone, a stalled encoder) only this long
  // past its due time (re-phasing: past a segment after the first answer), so a dropped
  // broadcast costs a viewer a second of asking every RETRY_MS at 5 s segments as at 1 s.
  const MAX_LATE_MS = 1000;

  /** The newest segment of a live MPEG-TS playlist (any latency level's), as
   * { uri, duration (ms) }, or null for any other playlist (ended, LL-HLS), which hls.js
   * loads as it always does. */
  function newestSegment(text) {
    if (typeof text !== "string" || /#EXT-X-(ENDLIST|PART-INF)/.test(text)) return null;
    // The last URI line, and the last #EXTINF (tags such as PROGRAM-DATE-TIME may sit
    // between the two).
    const uris = text.match(/^[^#\s].*$/gm);
    const infos = text.match(/^#EXTINF:[\d.]+/gm);
    if (!uris || !infos) return null;
    const seconds = Number(infos[infos.length - 1].slice("#EXTINF:".length));
    return { uri: uris[uris.length - 1], duration: seconds * 1000 };
  }

  /** A playlist loader (hls.js `pLoader`) for live playlists of whole segments. hls.js
   * reloads a live playlist once a segment, at a moment fixed by when it joined, so it
   * learns of each new segment up to a whole segment after it was listed. This one holds
   * hls.js's reload once, while the buffer allows (`ahead()`, seconds buffered, stays
   * above MIN_AHEAD_S), until the next segment is listed; from then on it knows when
   * segments appear, holds each reload until the next one is due and listed, and hls.js
   * hears of each within RETRY_MS: two or three requests a segment instead of one,
   * whatever the segment's length.
   * `known` (url -> { uri, at, exact, skip }: the newest segment hls.js got, when it
   * appeared) is shared by one player's loaders; anything else goes to hls.js's own. */
  function waitingLoader(Base, known, ahead) {
    return class WaitingPlaylistLoader {
      constructor(config) {
        this.config = config;
        this.inner = new Base(config);
        this.timer = null;
        this.context = null;
      }

      get stats() { return this.inner.stats; }

      getCacheAge() { return this.inner.getCacheAge ? this.inner.getCacheAge() : null; }

      getResponseHeader(name) {
        return this.inner.getResponseHeader ? this.inner.getResponseHeader(name) : null;
      }

      load(context, config, callbacks) {
        this.context = context;
        const last = context.type === "level" && !context.deliveryDirectives
          ? known.get(context.url) : undefined;
        let first = null; // the newest segment at this reload's first answer, and when
        let rephase = false; // holding a segment hls.js lacks, to learn when segments appear
        const attempt = () => {
          this.timer = null;
          this.inner.load(context, config, Object.assign({}, callbacks, {
            onSuccess: (response, stats, ctx, details) => {
              const now = performance.now();
              const newest = context.type === "level" ? newestSegment(response.data) : null;
              if (newest && last) {
                if (first === null) {
                  first = { uri: newest.uri, at: now };
                  rephase = newest.uri !== last.uri && !last.exact && last.skip <= 0;
                }
                const upTo = newest.duration + Math.min(newest.duration, MAX_LATE_MS);
                const hold = newest.uri !== first.uri ? false
                  : rephase ? ahead() > MIN_AHEAD_S && now < first.at + upTo
                    : newest.uri === last.uri && now < last.at + upTo;
                if (hold) {
                  this.inner.destroy(); // hls.js loaders load once
                  this.inner = new Base(this.config);
                  this.timer = setTimeout(attempt, RETRY_MS);
                  return;
                }
              }
              if (newest) {
                // Exact: seen appearing while asking, or already there when asked for as
                // planned (then a little earlier than due); else no later than `at`.
                const appeared = first !== null && newest.uri !== first.uri;
                const early = planned && newest.uri !== last.uri;
                const exact = appeared || early;
                const skip = rephase && !exact ? REPHASE_EVERY : (last ? last.skip - 1 : 0);
                const at = appeared ? now : early ? first.at - EARLY_MS / 2
                  : first ? first.at : now;
                known.set(context.url, {
                  uri: newest.uri, at, duration: newest.duration, exact, skip,
                });
              } else {
                known.delete(context.url);
              }
              callbacks.onSuccess(response, stats, ctx, details);
            },
          }));
        };
        const wait = last && last.exact
          ? last.at + last.duration - EARLY_MS - performance.now() : 0;
        const planned = wait > 0; // asking when the next segment is due, not when hls.js did
        if (planned) this.timer = setTimeout(attempt, Math.min(wait, last.duration));
        else attempt();
      }

      abort() {
        clearTimeout(this.timer);
        this.timer = null;
        this.inner.abort();
      }

      destroy() {
        clearTimeout(this.timer);
        this.timer = null;
        this.inner.destroy();
      }
    };
  }

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
     * playlist and hears of new segments as they are listed. The hold is set once per
     * player: hls.js's setter also forgets past stalls. */
    create(Hls, extra) {
      let hls = null;
      const ahead = () => {
        const media = hls && hls.media;
        if (!media || !media.buffered.length) return 0;
        return media.buffered.end(media.buffered.length - 1) - media.currentTime;
      };
      const pLoader = waitingLoader(Hls.DefaultConfig.loader, new Map(), ahead);
      hls = new Hls(Object.assign({ pLoader }, this.config, extra));
      hls.on(Hls.Events.LEVEL_LOADED, (_, data) => {
        const hold = this.holdBack(data.details);
        if (hold !== null && hls.config.liveSyncDuration !== hold) hls.targetLatency = hold;
      });
      return hls;
    },
  };
})();
