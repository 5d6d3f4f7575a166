"""Media tags: one audio frame, video frame or ``onMetaData`` of a broadcast, classified once.

The ingest turns each RTMP media message into a ``MediaTag`` where it arrives; everything
after it (the broadcast hub, the transcoder) reads the flags instead of parsing payloads
again. A tag's kind and timestamp are FLV's (RTMP media messages use the same type ids),
so the transcoder writes it to ffmpeg as an FLV tag without looking inside.

Only the first bytes of a payload are read to classify it; the payload itself is kept as
the ``bytes`` the message arrived in, never copied.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

AUDIO, VIDEO, SCRIPT = 8, 9, 18

# Legacy FLV video codec ids whose payload starts with an AVCPacketType byte (H.264, and
# HEVC and AV1 as some encoders sent them before Enhanced RTMP).
_AVC_LIKE = frozenset((7, 12, 13))
_AAC = 10
_AUDIO_EX_HEADER = 9


class MediaTag(NamedTuple):
    """One tag of a broadcast (a tuple, so it is immutable and cheap to build per frame)."""

    #: ``AUDIO``, ``VIDEO`` or ``SCRIPT`` (FLV tag types)
    kind: int
    #: milliseconds, all 32 bits
    timestamp: int
    #: the FLV tag body: the RTMP message as it arrived (for ``SCRIPT``: AMF0 onMetaData)
    payload: bytes
    #: a video frame a decoder can start from
    keyframe: bool = False
    #: a sequence header (decoder configuration), not media
    config: bool = False
    #: the decoded ``onMetaData`` object of a ``SCRIPT`` tag (None for media)
    metadata: Mapping[str, Any] | None = None


def media_tag(kind: int, timestamp: int, payload: bytes) -> MediaTag:
    """An audio or video message as a tag, with its keyframe and sequence-header flags.

    Legacy FLV and Enhanced RTMP (FourCC) headers are both understood: a video sequence
    header is AVC/HEVC packet type 0 or an ExVideo SequenceStart (or MPEG2TS
    SequenceStart); a keyframe is a key frame carrying coded data; an audio sequence
    header is AAC packet type 0 or an ExAudio SequenceStart.
    """
    if not payload:
        return MediaTag(kind, timestamp, payload)
    first = payload[0]
    if kind == VIDEO:
        key = first & 0x70 == 0x10  # frame type 1
        if first & 0x80:  # Enhanced RTMP: the low nibble is the packet type
            packet_type = first & 0x0F
            # CodedFrames / CodedFramesX; SequenceStart / MPEG2TSSequenceStart
            return MediaTag(
                VIDEO, timestamp, payload, key and packet_type in (1, 3), packet_type in (0, 5)
            )
        if first & 0x0F in _AVC_LIKE:
            packet_type = payload[1] if len(payload) > 1 else -1
            return MediaTag(VIDEO, timestamp, payload, key and packet_type == 1, packet_type == 0)
        return MediaTag(VIDEO, timestamp, payload, key)
    sound_format = first >> 4
    if sound_format == _AAC:
        return MediaTag(kind, timestamp, payload, False, len(payload) > 1 and payload[1] == 0)
    if sound_format == _AUDIO_EX_HEADER:
        return MediaTag(kind, timestamp, payload, False, first & 0x0F == 0)  # SequenceStart
    return MediaTag(kind, timestamp, payload)


def metadata_tag(timestamp: int, payload: bytes, metadata: Mapping[str, Any]) -> MediaTag:
    """An ``onMetaData`` tag: ``payload`` is its AMF0 encoding, ``metadata`` the object."""
    return MediaTag(SCRIPT, timestamp, payload, metadata=MappingProxyType(metadata))
