"""Child process: the patched sglang's ``UnquantizedLinearMethod.apply`` (patch 0020) on the
CPU.  A spy on ``gemv_dispatch.linear`` counts the calls (pristine sglang makes none); the
outputs, with and without bias, are checked against a float64 matmul.  Prints one JSON line.
"""

import json

import torch

from sglang_ext.perf.kernel_bench.sglang_baseline import activate_sglang

activate_sglang()
import sglang.srt.layers.quantization  # noqa: E402, F401  (breaks an import cycle of sglang)
from sglang.srt.layers.linear import UnquantizedLinearMethod  # noqa: E402

from sglang_ext.kernels import gemv_dispatch  # noqa: E402

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
y = method.apply(layer, x)
yb = method.apply(layer, x, b)
print(
    json.dumps(
        {
            "calls": len(calls),
            "err_ok": bool(torch.allclose(y.double(), want, rtol=1e-5, atol=1e-5)),
            "bias_ok": bool(torch.allclose(yb.double(), want + b.double(), rtol=1e-5, atol=1e-5)),
        }
    )
)
