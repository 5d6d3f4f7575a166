"""Periodic samplers (hardware, viewers) and the log ring buffer."""
