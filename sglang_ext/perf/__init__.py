"""Measurement code: one subpackage per job, loose shared modules at the top.

Modules are imported on demand (nothing here imports sglang at import time), so the GPU
benches run where sglang is not installed:

- ``serving``: load generation over ``sglang.bench_serving``'s request functions, serving
  metrics, the one ``ServerProcess`` (launch / probe / stop), the fake server, EP-vs-TP
  comparisons, GPU memory readings.
- ``comm``: collective and device bandwidth sweeps, the environment check.
- ``profile``: per-layer per-op Kineto profiling and trace analysis.
- ``report``: PNG plots and markdown reports from records only.
- ``records`` (JSONL result records), ``timing`` (the one timer), ``stats`` (spreads,
  serving points), ``dist_env`` (spawned CPU/GPU ranks), ``scaling`` (speedup, efficiency,
  ``bench_one_batch`` runs).
"""
