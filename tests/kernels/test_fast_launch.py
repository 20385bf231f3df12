"""``kernels.fast_launch.FastLaunch``: which kernels it takes (CPU, no launch), and on a CUDA
GPU that its later launches, through the compiled kernel of the first, give what Triton's own
launch gives for other batch sizes, integer widths and dtypes (the decode_inputs kernels
against sglang's ops are ``test_standin_kernels_gpu``'s ``decodeinputs`` cases)."""

import pytest
import torch
import triton
import triton.language as tl

from sglang_ext.kernels.fast_launch import FastLaunch

_ARGS = ["x_ptr", "y_ptr", "n", "add"]


@triton.jit
def _plain(x_ptr, y_ptr, n, add, BLOCK: tl.constexpr):
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(y_ptr + i, tl.load(x_ptr + i, mask=i < n) + add, mask=i < n)


@triton.jit(do_not_specialize=_ARGS, do_not_specialize_on_alignment=_ARGS)
def _loose(x_ptr, y_ptr, n, add, BLOCK: tl.constexpr):
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(y_ptr + i, tl.load(x_ptr + i, mask=i < n) + add, mask=i < n)


@triton.jit(do_not_specialize=["x_ptr", "n"], do_not_specialize_on_alignment=["x_ptr", "n"])
def _half(x_ptr, n, BLOCK: tl.constexpr):
    pass


@pytest.mark.skipif(not isinstance(_plain, triton.runtime.JITFunction), reason="interpreter")
def test_a_kernel_whose_arguments_may_be_specialized_is_refused():
    with pytest.raises(ValueError, match=r"\['x_ptr', 'y_ptr', 'n', 'add'\] may be specialized"):
        FastLaunch(_plain)
    FastLaunch(_loose)  # every argument loose: taken
    FastLaunch(_half)
    from sglang_ext.kernels import decode_inputs

    assert decode_inputs._advance.direct and decode_inputs._graph_inputs.direct


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_later_launches_match_a_fresh_triton_launch():
    f = FastLaunch(_loose)
    # n == 1 and an aligned pointer first: a specialized kernel would compile both in
    for n, add, dtype, off in [(1, 1, torch.int64, 0), (37, 5, torch.int64, 0),
                               (300, 2**31 + 3, torch.int64, 1), (16, -7, torch.int32, 3),
                               (1, 2, torch.float32, 1), (513, 1, torch.int32, 0)]:  # fmt: skip
        base = (torch.arange(n + off, device="cuda") * 3 - 50).to(dtype)
        x = base[off:]  # off > 0: a pointer not 16-byte aligned
        y, want = torch.full_like(x, -1), torch.full_like(x, -1)
        grid = (triton.cdiv(n, 128),)
        f(grid, x, y, n, add, BLOCK=128)
        _loose[grid](x, want, n, add, BLOCK=128)
        torch.cuda.synchronize()
        assert torch.equal(y, want), (n, add, dtype, off)
        assert torch.equal(y.cpu(), (x.cpu().double() + add).to(dtype)), (n, add, dtype, off)
    keys = {k[0][3] for k in f.compiled}  # 32- and 64-bit ``add`` compile apart
    assert keys == {True, False}, keys
    with pytest.raises(TypeError, match="expected 4 positional arguments"):
        f((1,), x, y, 1, BLOCK=128)
