"""Serving measurements: load generator, metrics, the one ServerProcess, fake server, comparisons."""
