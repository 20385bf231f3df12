"""Measurement helpers: result records, timing, load generation, bandwidth, profiling, plots.

Modules are imported on demand (nothing here imports sglang), so the GPU benches run
where sglang is not installed:

- ``records``: JSONL result records (schema, env, git sha).
- ``loadgen``, ``serve_metrics``, ``serve_bench``, ``bench_serving_compat``, ``fake_server``:
  the serving load generator over ``sglang.bench_serving``'s request functions.
- ``server_process``, ``compare``: launch / wait / stop servers; EP-vs-TP comparisons.
- ``timing``, ``collectives``, ``devbw``, ``dist_env``, ``envcheck``: bandwidth and environment.
- ``profiler``, ``trace_analysis``, ``toy_model``: per-layer per-op Kineto profiling.
- ``scaling``: speedup, efficiency, pipeline bubbles, ``bench_one_batch`` runs.
- ``plots``, ``report``: PNG plots and markdown reports from records only.
"""
