"""Media as it crosses from the ingest to the transcoder: FLV tags."""
