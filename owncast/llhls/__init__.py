"""LL-HLS (RFC 8216bis low-latency HLS): fMP4 fragments cut into parts and segments, with
playlists that offer blocking reload, preload hints, delta updates and rendition reports."""
