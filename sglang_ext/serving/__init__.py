"""Serving: our flags on top of sglang.launch_server's, and their defaults."""
