"""Experimental kernels: off the production import path.

Nothing in ``sglang_ext`` imports this package at module level; ``fused_mlp`` imports
``fused_mlp_onelaunch`` (the one-launch Triton v4) only when a launch config asks for it
(``MlpLaunchConfig(one_launch=True)``), and the bench and tests import it by name.
"""
