"""Media as it crosses from the ingest to the transcoder: classified tags, written as FLV
once, at ffmpeg's stdin."""

from owncast.media.tags import AUDIO, SCRIPT, VIDEO, MediaTag, media_tag, metadata_tag

__all__ = ["AUDIO", "SCRIPT", "VIDEO", "MediaTag", "media_tag", "metadata_tag"]
