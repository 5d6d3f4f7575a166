"""What a publisher says about its stream (``onMetaData``), as ``streamDetails``.

0.0.7 reported the width, height, frame rate, bitrates, codecs and encoder the publisher
announced; codec ids come as FLV numbers, enhanced-RTMP fourCC numbers or fourCC strings.
"""

from __future__ import annotations

from typing import Any

# 0.0.7's names where it had one (H.264, H.265, MP3, AAC, Speex; core/rtmp/utils.go).
_VIDEO_CODECS = {2: "Sorenson H.263", 4: "VP6", 7: "H.264", 12: "H.265", 13: "AV1"}
_AUDIO_CODECS = {2: "MP3", 10: "AAC", 11: "Speex", 13: "Opus"}
_FOURCC_NAMES = {
    "avc1": "H.264",
    "hvc1": "H.265",
    "av01": "AV1",
    "vp09": "VP9",
    "mp4a": "AAC",
    "Opus": "Opus",
    ".mp3": "MP3",
    "ac-3": "AC-3",
}


def codec_name(value: Any, table: dict[int, str]) -> str:
    """A codec id from metadata (number, fourCC number or fourCC string) as a name."""
    if isinstance(value, str):
        return _FOURCC_NAMES.get(value, value)
    if isinstance(value, (int, float)) and value >= 0:
        number = int(value)
        if number in table:
            return table[number]
        if number > 0xFF:
            fourcc = number.to_bytes(4, "big").decode("latin-1")
            return _FOURCC_NAMES.get(fourcc, fourcc)
    return ""


def details_from_metadata(meta: dict, details: dict) -> set[str]:
    """Fill ``streamDetails`` from an ``onMetaData`` object (fields OBS and ffmpeg send);
    return the fields it set."""
    filled = set()

    def number(key: str) -> int:
        value = meta.get(key)
        return int(value) if isinstance(value, (int, float)) and value == value else 0

    for key, field in (
        ("width", "width"),
        ("height", "height"),
        ("framerate", "framerate"),
        ("videodatarate", "videoBitrate"),
        ("audiodatarate", "audioBitrate"),
    ):
        if number(key):
            details[field] = number(key)
            filled.add(field)
    rate = meta.get("framerate")
    if "framerate" in filled and isinstance(rate, float) and not rate.is_integer():
        details["framerate"] = round(rate, 3)  # 29.97 stays 29.97, as 0.0.7's float32
    # As 0.0.7: "Unknown" for a codec it cannot name, "No audio" when none is announced.
    video_id, audio_id = meta.get("videocodecid"), meta.get("audiocodecid")
    details["videoCodec"] = codec_name(video_id, _VIDEO_CODECS) or "Unknown"
    details["audioCodec"] = (
        "No audio" if audio_id is None else codec_name(audio_id, _AUDIO_CODECS) or "Unknown"
    )
    if isinstance(meta.get("encoder"), str):
        details["encoder"] = meta["encoder"][:200]
    return filled


def empty_details() -> dict:
    return {
        "width": 0,
        "height": 0,
        "framerate": 0,
        "videoBitrate": 0,
        "videoCodec": "",
        "audioBitrate": 0,
        "audioCodec": "",
        "encoder": "",
    }
