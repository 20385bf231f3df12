"""Per-layer, per-op Kineto profiling (``profiler``) and trace analysis (``trace_analysis``)."""
