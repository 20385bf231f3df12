"""``kernels.pdl`` on the CPU: where PDL is off, the switch, and the protocol of every kernel
that takes a ``PDL`` flag (it waits before its first load or store).  The GPU side (a chain of
PDL kernels in a CUDA graph against float64) is ``test_pdl_gpu.py``."""

import inspect

import pytest
import torch

from sglang_ext.kernels import activation, gemv, norm, pdl, qk_norm_rope
from sglang_ext.serving.config import PDL_ENV, rank_config


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.delenv("SGLANG_EXT_CONFIG", raising=False)
    rank_config.cache_clear()
    yield monkeypatch
    rank_config.cache_clear()


def test_cpu_launches_take_no_pdl(fresh):
    fresh.setattr(pdl, "supported", lambda index: True)  # even where the GPU could
    assert pdl.launch_kwargs(torch.empty(2)) == {"PDL": False}  # no launch_pdl for the interpreter


@pytest.mark.parametrize("raw, on", [(None, False), ("1", True), ("0", False), ("off", False)])
def test_the_switch_turns_pdl_off(fresh, raw, on):
    fresh.setattr(pdl, "supported", lambda index: True)
    if raw is None:
        fresh.delenv(PDL_ENV, raising=False)
    else:
        fresh.setenv(PDL_ENV, raw)
    assert pdl._on(0) is on


def test_unsupported_device_is_off_whatever_the_switch(fresh):
    fresh.setattr(pdl, "supported", lambda index: False)
    fresh.setenv(PDL_ENV, "1")
    assert pdl._on(0) is False


def _src(fn) -> str:
    return inspect.getsource(getattr(fn, "fn", fn))  # JITFunction or the interpreter's wrapper


@pytest.mark.parametrize(
    "kernel",
    [
        gemv._gemv_kernel,
        norm._rmsnorm_kernel,
        activation._gated_kernel,
        qk_norm_rope._qk_norm_rope_kernel,
    ],  # fmt: skip
    ids=lambda k: getattr(k, "__name__", str(k)),
)
def test_pdl_kernels_wait_before_touching_data(kernel):
    src = _src(kernel)
    assert "PDL: tl.constexpr" in src
    body = src.split("):\n", 1)[1]  # after the signature
    wait = body.index("pdl.wait_then_release()")
    first = min(body.index(op) for op in ("tl.load(", "tl.store(", "_token_cos_sin(") if op in body)
    assert wait < first, "a PDL kernel reads or writes before griddepcontrol.wait"
