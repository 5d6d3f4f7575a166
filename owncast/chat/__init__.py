"""The chat websocket at ``/entry`` and its fan-out."""
