"""RTMP ingest: handshake, chunk stream, AMF, the publish flow, FLV out."""
