"""flashinfer for the sgl_kernel stand-in: its import, where its JIT builds go, and a prebuild.

flashinfer-python 0.2.6.post1 (sglang 0.4.7's pin) is a JIT package: each op family (norm,
rope, ``silu_and_mul``...) is compiled by ninja/nvcc on first use (25-50 s each on the lent
H200) into ``$FLASHINFER_WORKSPACE_BASE/.cache/flashinfer/<arch>/cached_ops/<module>/``
(``FLASHINFER_WORKSPACE_BASE`` defaults to ``$HOME``; read once, when flashinfer is imported).

``SGLANG_EXT_FLASHINFER_CACHE=DIR`` keeps those builds in a folder that can be carried to the
next machine:

* ``FLASHINFER_WORKSPACE_BASE`` is exported as ``DIR/<flashinfer version>_torch-<torch
  version>`` (a build for another torch does not load), and an already imported flashinfer's
  JIT folders are pointed there (sglang may import it first);
* flashinfer's prebuilt (AOT) folder is pointed at that workspace's ``cached_ops``, so a
  module already built there is loaded as is.  Without this, ninja would
  rebuild it: a fresh ``pip install`` of flashinfer gives its sources new mtimes, newer than
  the carried objects.

Carry only the ``*.so`` files (``tar -C DIR -czf x.tgz $(cd DIR && find . -name '*.so')``);
unpack them into the same DIR on the next machine.  ``python -m sglang_ext.compat.flashinfer_jit
--build`` compiles the stand-in's modules in one parallel ninja run (``MAX_JOBS``) and prints
where they are.  The stand-in applies all this at its import when the variable is set, so
sglang's own flashinfer modules (attention, sampling) in each server process use the folder
too.  Importing this module imports neither torch nor flashinfer.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import sys
import time
from pathlib import Path
from types import ModuleType

__all__ = ["CACHE_ENV", "ACTS", "workspace_base", "load", "available", "prebuild"]

logger = logging.getLogger(__name__)

CACHE_ENV = "SGLANG_EXT_FLASHINFER_CACHE"
ACTS = ("silu", "gelu", "gelu_tanh")  # the gated activations the stand-in serves


def workspace_base(cache: str, fi_version: str, torch_version: str) -> Path:
    """The workspace base for a cache folder: one subfolder per (flashinfer, torch) pair."""
    key = f"flashinfer-{fi_version}_torch-{torch_version}".replace("+", "_")
    return Path(cache).expanduser().resolve() / key


def _workspace_from_env() -> Path | None:
    """``FLASHINFER_WORKSPACE_BASE`` for ``SGLANG_EXT_FLASHINFER_CACHE``, exported (inherited by
    child processes); None when the cache is not asked for."""
    cache = os.environ.get(CACHE_ENV)
    if not cache:
        return None
    import torch

    base = workspace_base(cache, importlib.metadata.version("flashinfer-python"), torch.__version__)
    prev = os.environ.get("FLASHINFER_WORKSPACE_BASE")
    if prev and Path(prev).resolve() != base:
        raise ValueError(
            f"{CACHE_ENV}={cache} wants FLASHINFER_WORKSPACE_BASE={base}, but it is set to "
            f"{prev}: unset one of the two"
        )
    os.environ["FLASHINFER_WORKSPACE_BASE"] = str(base)
    return base


def _point(jit_env: ModuleType, base: Path) -> None:
    """Point an imported flashinfer's JIT folders at ``base`` (its import may have come first,
    from sglang, with the default base) and let modules already built there load without
    ninja (see the module doc).  flashinfer reads these names at each build."""
    ws = base / ".cache" / "flashinfer" / jit_env.FLASHINFER_WORKSPACE_DIR.name  # <arch>
    jit_env.FLASHINFER_BASE_DIR, jit_env.FLASHINFER_CACHE_DIR = base, ws.parent
    jit_env.FLASHINFER_WORKSPACE_DIR = ws
    jit_env.FLASHINFER_JIT_DIR = ws / "cached_ops"
    jit_env.FLASHINFER_GEN_SRC_DIR = ws / "generated"
    jit_env.FLASHINFER_AOT_DIR = jit_env.FLASHINFER_JIT_DIR


@functools.cache
def _load() -> tuple[ModuleType | None, str]:
    if importlib.util.find_spec("flashinfer") is None:
        return None, "flashinfer is not installed"
    try:
        base = _workspace_from_env()
        fi = importlib.import_module("flashinfer")
        for sub in ("norm", "activation", "rope", "jit"):
            importlib.import_module(f"flashinfer.{sub}")
    except (ImportError, OSError) as e:  # a build for another torch/CUDA, a missing nvcc...
        return None, f"flashinfer does not import: {type(e).__name__}: {e}"
    if base is not None:
        _point(fi.jit.env, base)
        logger.info("flashinfer JIT workspace %s (built modules load as is)", base)
    return fi, ""


def load() -> ModuleType:
    """The imported ``flashinfer`` package, its JIT workspace configured first.

    Raises ``RuntimeError`` naming the fix when flashinfer is absent or does not import.
    """
    fi, why = _load()
    if fi is None:
        raise RuntimeError(
            f"{why}. Install flashinfer-python 0.2.6.post1 (a JIT sdist: pip install --no-deps "
            "--no-build-isolation flashinfer_python-0.2.6.post1.tar.gz; needs nvcc and ninja), "
            "or pick the Triton ops with SGLANG_EXT_STANDIN_IMPL=triton"
        )
    return fi


def available() -> bool:
    """True when flashinfer imports here (checked once per process)."""
    return _load()[0] is not None


def prebuild(acts: tuple[str, ...] = ACTS) -> dict:
    """Compile the stand-in's flashinfer modules (norm, rope, ``<act>_and_mul``) in one ninja
    run, skipping those already built; returns where they are and how long it took."""
    fi = load()
    from flashinfer.activation import gen_act_and_mul_module
    from flashinfer.norm import gen_norm_module
    from flashinfer.rope import gen_rope_module

    specs = [gen_norm_module(), gen_rope_module(), *(gen_act_and_mul_module(a) for a in acts)]
    t0 = time.perf_counter()
    fi.jit.build_jit_specs(specs, verbose=False)
    return {
        "jit_dir": str(fi.jit.env.FLASHINFER_JIT_DIR),
        "build_s": round(time.perf_counter() - t0, 1),
        "modules": {s.name: str(s.get_library_path()) for s in specs},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--build", action="store_true", help="compile the stand-in's modules now")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        info = prebuild() if a.build else {"jit_dir": str(load().jit.env.FLASHINFER_JIT_DIR)}
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(info, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
