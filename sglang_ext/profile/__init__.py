"""Per-layer, per-op profile of the served model (sglang's own ModelRunner on every rank),
with every collective it issues; the decode-step budget on the GPU.

``python -m sglang_ext.profile --help``. Modules: ``config`` (flags), ``labels`` (module
hooks), ``comm`` (collective recorder), ``rank`` (one rank's run), ``kineto`` (GPU
kernels tied to the CPU ranges of their launching call), ``analysis`` (trace -> numbers),
``analytic`` (the expected collectives), ``launch`` (the command), ``report`` (tp vs dp
plots), ``decode_budget`` and ``budget`` (GPU decode budget records).
Importing this package changes nothing in sglang.
"""

__all__: list[str] = []
