"""The CUDA one-launch MLP under torch.compile (sglang's --enable-torch-compile).

Its launch is a ctypes call with a raw stream handle, which dynamo cannot trace (on the H200:
"AttributeError: 'torch.Stream' object has no attribute 'cuda_stream'"). Under compilation it
goes through the registered op ``sglang_ext::fused_mlp_onelaunch``: the function must trace
into one graph (fullgraph=True fails on any break) holding that op, with the output shape of
the MLP. The backend here only records the graph, so no kernel runs (CPU is enough).
"""

import torch

from sglang_ext.kernels.cuda_onelaunch import fused_swiglu_mlp_cuda


def test_traces_into_one_graph_with_the_registered_op():
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return lambda *args: (torch.zeros(args[0].shape[0], args[2].shape[0]),)

    def mlp(x, w13, w2):
        return fused_swiglu_mlp_cuda(x, w13, w2)

    x, w13, w2 = torch.randn(3, 64), torch.randn(2 * 32, 64), torch.randn(64, 32)
    out = torch.compile(mlp, backend=backend, fullgraph=True)(x, w13, w2)
    assert len(graphs) == 1
    targets = [str(n.target) for n in graphs[0].graph.nodes if n.op == "call_function"]
    assert "sglang_ext.fused_mlp_onelaunch.default" in targets, targets
    assert out.shape == (3, 64)
    torch._dynamo.reset()
