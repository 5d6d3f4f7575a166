"""Where finished HLS segments go besides the local HLS directory (S3-compatible storage)."""
