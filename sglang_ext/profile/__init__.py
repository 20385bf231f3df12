"""Per-layer, per-op profile of the served model (sglang's own ModelRunner on every rank),
with every collective it issues; the decode-step budget on the GPU.

``python -m sglang_ext.profile --help``. Modules: ``config`` (flags), ``labels`` (module
hooks), ``comm`` (GroupCoordinator recorder), ``rank`` (one rank's run), ``analysis``
(trace -> numbers), ``analytic`` (the expected collectives), ``launch`` (the command),
``report`` (tp vs dp plots), ``decode_budget`` (GPU decode budget records).
Importing this package changes nothing in sglang.
"""

__all__: list[str] = []
