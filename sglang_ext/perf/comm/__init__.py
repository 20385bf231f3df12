"""Communication and environment: collective and device bandwidth sweeps, the env check."""
