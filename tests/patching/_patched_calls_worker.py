"""Child process: the patched sglang's call sites of patches 0020-0022 on the CPU, against
pristine behaviour or hand-computed answers.  Prints one JSON line {case: result}.

* ``linear``: ``UnquantizedLinearMethod.apply`` (patch 0020) goes through
  ``gemv_dispatch.linear`` (a spy counts the calls; pristine sglang makes none), and its
  outputs with and without bias equal a float64 matmul.
* ``in_graph``: :func:`sglang_ext.serving.cuda_graph.metadata_in_graph` on runner objects
  shaped like sglang's ``CudaGraphRunner`` (a real ``TritonAttnBackend`` instance, made
  without its constructor): True only for the plain Triton decode case, False for each
  departure, and False with ``graph_metadata`` off.
* ``replay_prepare``: the patched ``CudaGraphRunner.replay_prepare`` (patch 0021) on CPU
  buffers: the backend's host-side metadata call happens when the graph does not compute it,
  not when it does; the padded batch's inputs are copied the same either way.
* ``host_calls``: every call :data:`sglang_ext.profile.host_calls.DECODE_HOST_CALLS` names
  exists in the patched sglang, and a ``replay_prepare`` timed through them counts itself
  and the patched-in ``copy_graph_inputs`` it calls (looked up where it calls it) once each.
* ``positions``: the patched ``clamp_position`` (patch 0022) is a plain function (no
  ``torch.compile`` wrapper) and gives clamp(seq_lens - 1, 0) as int64.
"""

import json
import os
from types import SimpleNamespace

import torch

from sglang_ext.perf.kernel_bench.sglang_baseline import activate_sglang

activate_sglang()
import sglang.srt.layers.quantization  # noqa: E402, F401  (breaks an import cycle of sglang)
from sglang.srt.layers.attention.triton_backend import TritonAttnBackend  # noqa: E402
from sglang.srt.layers.linear import UnquantizedLinearMethod  # noqa: E402
from sglang.srt.model_executor import forward_batch_info as fbi  # noqa: E402
from sglang.srt.model_executor.cuda_graph_runner import CudaGraphRunner  # noqa: E402
from sglang.srt.model_executor.forward_batch_info import ForwardMode  # noqa: E402
from sglang.srt.speculative.spec_info import SpeculativeAlgorithm  # noqa: E402

from sglang_ext.kernels import gemv_dispatch  # noqa: E402
from sglang_ext.serving import config as cfg  # noqa: E402
from sglang_ext.serving.cuda_graph import metadata_in_graph  # noqa: E402

res = {}

# ---- patch 0020 -------------------------------------------------------------------------
calls = []
real = gemv_dispatch.linear


def spy(x, weight, bias=None):
    calls.append(tuple(x.shape))
    return real(x, weight, bias)


gemv_dispatch.linear = spy
layer = torch.nn.Module()
method = UnquantizedLinearMethod()
method.create_weights(layer, 64, [48], 64, 48, torch.float32)
g = torch.Generator().manual_seed(0)
with torch.no_grad():
    layer.weight.copy_(torch.randn(48, 64, generator=g))
x = torch.randn(3, 64, generator=g)
b = torch.randn(48, generator=g)
want = x.double() @ layer.weight.double().T
y, yb = method.apply(layer, x), method.apply(layer, x, b)
gemv_dispatch.linear = real
res["linear"] = {
    "calls": len(calls),
    "err_ok": bool(torch.allclose(y.double(), want, rtol=1e-5, atol=1e-5)),
    "bias_ok": bool(torch.allclose(yb.double(), want + b.double(), rtol=1e-5, atol=1e-5)),
}


# ---- metadata_in_graph -------------------------------------------------------------------
def runner(**change):
    backend = object.__new__(TritonAttnBackend)
    backend.sliding_window_size = change.pop("window", None)
    mr = SimpleNamespace(attn_backend=change.pop("backend", backend),
                         spec_algorithm=change.pop("spec", SpeculativeAlgorithm.NONE))  # fmt: skip
    fields = dict(model_runner=mr, capture_forward_mode=ForwardMode.DECODE, pp_size=1,
                  enable_dp_attention=False, enable_sp_layernorm=False,
                  enable_two_batch_overlap=False, is_encoder_decoder=False)  # fmt: skip
    fields.update(change)
    return SimpleNamespace(**fields)


class Sub(TritonAttnBackend):
    pass


departures = {
    "plain": {},
    "subclass": {"backend": object.__new__(Sub)},
    "other backend": {"backend": object()},
    "verify mode": {"capture_forward_mode": ForwardMode.TARGET_VERIFY},
    "eagle": {"spec": SpeculativeAlgorithm.EAGLE},
    "sliding window": {"window": 4096},
    "dp attention": {"enable_dp_attention": True},
    "sp layernorm": {"enable_sp_layernorm": True},
    "pp": {"pp_size": 2},
    "two-batch overlap": {"enable_two_batch_overlap": True},
    "encoder-decoder": {"is_encoder_decoder": True},
}
got = {k: metadata_in_graph(runner(**dict(v))) for k, v in departures.items()}
cfg.rank_config.cache_clear()
cfg.SingleExpertConfig(graph_metadata=False).export()
got["plain, switched off"] = metadata_in_graph(runner())
cfg.rank_config.cache_clear()
del os.environ[cfg.CONFIG_ENV]
res["in_graph"] = got


# ---- patch 0021: replay_prepare ------------------------------------------------------------
def replay_prepare(in_graph: bool):
    meta = []
    backend = SimpleNamespace(
        init_forward_metadata_replay_cuda_graph=lambda bs, *a, **kw: meta.append(bs)
    )
    server_args = SimpleNamespace(enable_ep_moe=False, enable_deepep_moe=False)
    n = 4  # the captured size; 3 rows arrive
    self = SimpleNamespace(
        metadata_in_graph=in_graph, capture_bs=[1, 2, 4], num_tokens_per_bs=1,
        enable_dp_attention=False, enable_sp_layernorm=False, enable_two_batch_overlap=False,
        is_encoder_decoder=False, pp_proxy_tensors=None, encoder_lens=None,
        model_runner=SimpleNamespace(attn_backend=backend, server_args=server_args),
        recapture_if_needed=lambda fb: None, seq_lens_cpu=torch.zeros(n, dtype=torch.int32),
        input_ids=torch.full((n,), -1), req_pool_indices=torch.full((n,), -1),
        seq_lens=torch.full((n,), -1, dtype=torch.int32), out_cache_loc=torch.full((n,), -1),
        positions=torch.full((n,), -1),
    )  # fmt: skip
    fb = SimpleNamespace(
        batch_size=3, input_ids=torch.tensor([7, 8, 9]), req_pool_indices=torch.tensor([2, 0, 1]),
        seq_lens=torch.tensor([5, 6, 7], dtype=torch.int32), out_cache_loc=torch.tensor([10, 11, 12]),
        positions=torch.tensor([4, 5, 6]), seq_lens_cpu=torch.tensor([5, 6, 7], dtype=torch.int32),
        mrope_positions=None, seq_lens_sum=18, forward_mode=ForwardMode.DECODE, spec_info=None,
    )  # fmt: skip
    CudaGraphRunner.replay_prepare(self, fb)
    return {"metadata_calls": meta, "bs": self.bs, "seq_lens": self.seq_lens.tolist(),
            "input_ids": self.input_ids.tolist(), "out_cache_loc": self.out_cache_loc.tolist()}  # fmt: skip


res["replay_prepare"] = {"host": replay_prepare(False), "graph": replay_prepare(True)}

# ---- profile.host_calls on the patched sglang ------------------------------------------------
from sglang_ext.profile.host_calls import DECODE_HOST_CALLS, resolve, timed_calls  # noqa: E402

unresolved = {}
for label, target in DECODE_HOST_CALLS:
    try:
        resolve(target)
    except (ValueError, ImportError) as e:
        unresolved[label] = str(e)
before = CudaGraphRunner.__dict__["replay_prepare"]
with timed_calls(DECODE_HOST_CALLS) as timed:
    replay_prepare(False)
res["host_calls"] = {
    "unresolved": unresolved,
    "calls": {k: c.calls for k, c in timed.items() if c.calls},
    "restored": CudaGraphRunner.__dict__["replay_prepare"] is before,
}

# ---- patch 0022 ---------------------------------------------------------------------------
seq = torch.tensor([0, 1, 5, 130], dtype=torch.int32)
pos = fbi.clamp_position(seq)
res["positions"] = {"compiled": hasattr(fbi.clamp_position, "_torchdynamo_orig_callable"),
                    "values": pos.tolist(),
                    "dtype": str(pos.dtype)}  # fmt: skip
print(json.dumps(res))
