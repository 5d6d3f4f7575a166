"""Recordings: broadcasts kept as VOD HLS, their clips and MP4 downloads."""
