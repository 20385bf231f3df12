"""Child process: the real flashinfer (its sdist's Python package, on PYTHONPATH) under
SGLANG_EXT_FLASHINFER_CACHE, imported after (argv[1] == "late") or before ("early") sglang_ext
configures it.  Prints one JSON line: where its JIT specs write, and whether a module whose
.so is already in the cache would load without a build."""

import json
import sys

if sys.argv[1] == "early":
    import flashinfer  # noqa: F401  (as sglang may import it before the stand-in)

from sglang_ext.compat import flashinfer_jit  # noqa: E402

fi = flashinfer_jit.load()
from flashinfer.activation import gen_act_and_mul_module  # noqa: E402
from flashinfer.norm import gen_norm_module  # noqa: E402

norm, silu = gen_norm_module(), gen_act_and_mul_module("silu")
before = norm.aot_path.exists()
norm.jit_library_path.write_bytes(b"")  # as if built on an earlier call and carried here
print(json.dumps({
    "norm_ninja": str(norm.ninja_path),
    "silu_source": str(silu.sources[0]),
    "prebuilt_before": before,
    "prebuilt_after": norm.aot_path.exists(),
    "loads": str(norm.get_library_path()),
}))  # fmt: skip
