"""Benchmarks of owncast-py beside its peers (``make bench``)."""
