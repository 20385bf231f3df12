"""The one-launch small-M SwiGLU MLP shard in CUDA C++ (``csrc/fused_mlp_onelaunch.cu``).

``fused_swiglu_mlp_cuda(x, w13, w2)`` computes ``(silu(x Wg^T) * (x Wu^T)) W2^T`` for
M <= 32 tokens, bf16 or fp16, in one cooperative launch (design in the .cu file).  The source
is built on first use with ``torch.utils.cpp_extension.load`` (needs nvcc and a CUDA torch)
into ``$SGLANG_EXT_CACHE/torch_extensions/`` and loaded with ctypes: the library has a plain
C ABI and no torch headers, so the build is one nvcc call (about 15 s) and the same source
compiles in CPU CI.  Where does the source come from: ``$SGLANG_EXT_CSRC``, else the
repository's ``csrc/`` (source checkout, editable install), else the copy installed with the
package (``sglang_ext/_csrc``).
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
from pathlib import Path

import torch

from sglang_ext.cache import cache_dir

__all__ = ["MAX_M", "csrc_dir", "fused_swiglu_mlp_cuda", "is_available", "load", "plan", "supports"]

logger = logging.getLogger(__name__)
MAX_M = 32
"""Largest token count the kernel takes (SGLANG_EXT_ONELAUNCH_MAX_M in the header)."""
SOURCE = "fused_mlp_onelaunch.cu"
_DTYPES = {torch.bfloat16: 0, torch.float16: 1}
_ARCH_FLAGS = [
    "-gencode=arch=compute_90a,code=sm_90a",
    "-gencode=arch=compute_90,code=sm_90",
    "-gencode=arch=compute_80,code=sm_80",
]


def csrc_dir() -> Path:
    """The folder holding ``fused_mlp_onelaunch.cu`` (see the module docstring)."""
    env = os.environ.get("SGLANG_EXT_CSRC")
    here = Path(__file__).resolve()
    for cand in ([Path(env)] if env else []) + [
        here.parents[2] / "csrc",
        here.parents[1] / "_csrc",
    ]:
        if (cand / SOURCE).is_file():
            return cand
    raise FileNotFoundError(
        f"{SOURCE} not found (SGLANG_EXT_CSRC={env!r}, {here.parents[2] / 'csrc'}, "
        f"{here.parents[1] / '_csrc'}): run from a source checkout or point SGLANG_EXT_CSRC at "
        f"the repository's csrc/ folder"
    )


def _arch_flags() -> list[str]:
    """Code for the GPU present (sm_90a on Hopper) or, without one, the list above."""
    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability()
        arch = f"{major}{minor}{'a' if major == 9 else ''}"
        return [f"-gencode=arch=compute_{arch},code=sm_{arch}"]
    return list(_ARCH_FLAGS)


def _nvcc_build(src: Path, build: Path, flags: list[str], cuda_home: str | None) -> Path:
    import subprocess

    nvcc = Path(cuda_home or "/usr/local/cuda") / "bin" / "nvcc"
    out = build / "sglang_ext_fused_mlp_onelaunch_nvcc.so"
    if out.is_file() and out.stat().st_mtime > (src / SOURCE).stat().st_mtime:
        return out
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    cmd = [
        str(nvcc),
        *flags,
        "-shared",
        "-Xcompiler",
        "-fPIC",
        f"-I{src}",
        str(src / SOURCE),
        "-o",
        str(tmp),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode:
        raise RuntimeError(f"nvcc failed ({' '.join(cmd)}):\n{proc.stderr[-3000:]}")
    tmp.replace(out)
    return out


@functools.cache
def load() -> ctypes.CDLL:
    """Build (once, cached) and load the kernel library; a clear error where it cannot."""
    if torch.version.cuda is None:
        raise RuntimeError(
            f"torch {torch.__version__} has no CUDA: the CUDA one-launch kernel "
            "needs a CUDA build of torch (and nvcc) to build"
        )
    from torch.utils import cpp_extension

    src = csrc_dir()
    build = (
        cache_dir()
        / "torch_extensions"
        / (f"fused_mlp_onelaunch_torch{torch.__version__.split('+')[0]}_cu{torch.version.cuda}")
    )
    build.mkdir(parents=True, exist_ok=True)
    flags = ["-O3", "-std=c++17", *_arch_flags()]
    if cpp_extension.is_ninja_available():
        path = cpp_extension.load(
            name="sglang_ext_fused_mlp_onelaunch",
            sources=[str(src / SOURCE)],
            extra_cuda_cflags=flags,
            extra_include_paths=[str(src)],
            build_directory=str(build),
            is_python_module=False,
            verbose=False,
        )
    else:  # cpp_extension needs ninja; the library is one nvcc call without it
        path = _nvcc_build(src, build, flags, cpp_extension.CUDA_HOME)
    lib = _bind(Path(path))
    logger.info("CUDA one-launch MLP kernel loaded from %s", path)
    return lib


def _bind(path: Path) -> ctypes.CDLL:
    """Load the built library and declare its C signatures."""
    lib = ctypes.CDLL(str(path))
    lib.sglang_ext_fused_mlp_onelaunch.restype = ctypes.c_int
    lib.sglang_ext_fused_mlp_onelaunch.argtypes = (
        [ctypes.c_void_p] * 5 + [ctypes.c_int] * 6 + [ctypes.c_void_p]
    )
    lib.sglang_ext_fused_mlp_onelaunch_plan.restype = ctypes.c_int
    lib.sglang_ext_fused_mlp_onelaunch_plan.argtypes = [ctypes.c_int] * 6 + [
        ctypes.POINTER(ctypes.c_int)
    ]
    lib.sglang_ext_cuda_error_string.restype = ctypes.c_char_p
    lib.sglang_ext_cuda_error_string.argtypes = [ctypes.c_int]
    return lib


def is_available(device: torch.device | str | None = None) -> bool:
    """True when the library builds and loads and ``device`` is a CUDA device (logged if not)."""
    dev = torch.device(device) if device is not None else torch.device("cuda")
    if dev.type != "cuda" or not torch.cuda.is_available():
        return False
    try:
        load()
    except Exception as e:  # no nvcc, a failed build, ...
        logger.warning("CUDA one-launch MLP kernel unavailable: %s", e)
        return False
    return True


def supports(m: int, hidden: int, inter: int, dtype: torch.dtype) -> bool:
    """Shapes and dtypes the kernel takes (the dispatcher sends nothing else)."""
    return 1 <= m <= MAX_M and hidden % 8 == 0 and inter % 8 == 0 and dtype in _DTYPES


def _raise(lib: ctypes.CDLL, err: int, what: str) -> None:
    if err:
        msg = lib.sglang_ext_cuda_error_string(err).decode()
        raise RuntimeError(f"CUDA one-launch MLP kernel: {what} failed: {msg} (cudaError {err})")


def plan(
    m: int,
    hidden: int,
    inter: int,
    dtype: torch.dtype = torch.bfloat16,
    *,
    blocks_per_sm: int = 2,
    ksplit_max: int = 0,
) -> dict[str, int]:
    """The launch shape on the current device: grid blocks, ksplit, lanes2, smem bytes."""
    lib = load()
    out4 = (ctypes.c_int * 4)()
    _raise(
        lib,
        lib.sglang_ext_fused_mlp_onelaunch_plan(
            m, hidden, inter, _DTYPES[dtype], blocks_per_sm, ksplit_max, out4
        ),
        "plan",
    )
    return dict(zip(("grid", "ksplit", "lanes2", "smem_bytes"), list(out4), strict=True))


def _check(x: torch.Tensor, w13: torch.Tensor, w2: torch.Tensor, out: torch.Tensor | None):
    if not x.is_cuda:
        raise ValueError(f"x is on {x.device}: the CUDA kernel needs CUDA tensors")
    for name, t in (("x", x), ("w13", w13), ("w2", w2)):
        if t.dim() != 2:
            raise ValueError(f"{name} must be 2-D, got shape {tuple(t.shape)}")
        if t.dtype not in _DTYPES:
            raise TypeError(f"{name}.dtype={t.dtype}: the CUDA kernel takes bfloat16 or float16")
        if t.dtype != x.dtype or t.device != x.device:
            raise ValueError(f"{name} is {t.dtype} on {t.device}, x is {x.dtype} on {x.device}")
        if not t.is_contiguous() or t.data_ptr() % 16:
            raise ValueError(f"{name} must be contiguous and 16-byte aligned; call .contiguous()")
    m, hidden = x.shape
    inter = w13.shape[0] // 2
    if w13.shape != (2 * inter, hidden) or w2.shape != (hidden, inter):
        raise ValueError(
            f"need w13 [2I, H={hidden}] and w2 [H, I], got {tuple(w13.shape)} and {tuple(w2.shape)}"
        )
    if not supports(max(m, 1), hidden, inter, x.dtype):
        raise ValueError(
            f"M={m}, H={hidden}, I={inter}: the CUDA kernel takes M <= {MAX_M} and "
            "H, I multiples of 8; use fused_swiglu_mlp (Triton) or torch"
        )
    if out is not None and (
        out.shape != (m, hidden)
        or out.dtype != x.dtype
        or out.device != x.device
        or not out.is_contiguous()
    ):
        raise ValueError(f"out must be a contiguous [{m}, {hidden}] {x.dtype} on {x.device}")


@torch.library.custom_op("sglang_ext::fused_mlp_onelaunch", mutates_args=())
def _onelaunch_op(
    x: torch.Tensor, w13: torch.Tensor, w2: torch.Tensor, blocks_per_sm: int, ksplit_max: int
) -> torch.Tensor:
    """The launch as a torch op, so torch.compile (sglang's --enable-torch-compile) keeps it
    in its graph as one opaque call instead of tracing the ctypes launch."""
    return _launch(x, w13, w2, None, blocks_per_sm, ksplit_max)


@_onelaunch_op.register_fake
def _(x, w13, w2, blocks_per_sm, ksplit_max):
    return x.new_empty((x.shape[0], w2.shape[0]))


def fused_swiglu_mlp_cuda(
    x: torch.Tensor,
    w13: torch.Tensor,
    w2: torch.Tensor,
    *,
    out: torch.Tensor | None = None,
    blocks_per_sm: int = 2,
    ksplit_max: int = 0,
) -> torch.Tensor:
    """x: [M, H], w13: [2I, H], w2: [H, I] -> out [M, H]; one launch on the current stream.

    Under torch.compile the launch goes through the registered op ``sglang_ext::
    fused_mlp_onelaunch`` (eager calls skip the dispatcher's host cost)."""
    if out is None and torch.compiler.is_compiling():
        return _onelaunch_op(x, w13, w2, blocks_per_sm, ksplit_max)
    return _launch(x, w13, w2, out, blocks_per_sm, ksplit_max)


def _launch(
    x: torch.Tensor,
    w13: torch.Tensor,
    w2: torch.Tensor,
    out: torch.Tensor | None,
    blocks_per_sm: int,
    ksplit_max: int,
) -> torch.Tensor:
    _check(x, w13, w2, out)
    m, hidden = x.shape
    inter = w2.shape[1]
    if out is None:
        out = torch.empty((m, hidden), dtype=x.dtype, device=x.device)
    if m == 0:
        return out
    lib = load()
    h = torch.empty((m, inter), dtype=x.dtype, device=x.device)  # fully written in phase 1
    with torch.cuda.device(x.device):
        stream = torch.cuda.current_stream(x.device).cuda_stream
        err = lib.sglang_ext_fused_mlp_onelaunch(
            x.data_ptr(),
            w13.data_ptr(),
            w2.data_ptr(),
            out.data_ptr(),
            h.data_ptr(),
            m,
            hidden,
            inter,
            _DTYPES[x.dtype],
            blocks_per_sm,
            ksplit_max,
            stream,
        )
    _raise(lib, err, f"launch (M={m}, H={hidden}, I={inter})")
    return out
