"""Measurement helpers: result records, timing, load generation."""
