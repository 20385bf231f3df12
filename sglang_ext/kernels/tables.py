"""Where measured kernel tables live: one JSON file per (kind, Triton version, device).

As sglang's fused-MoE configs, tables are data beside the kernels::

    configs/triton_3_6_0/device_name=NVIDIA_H200.json                    # fused MLP launches
    configs/triton_3_6_0/dispatch_device_name=NVIDIA_H200.json           # MLP implementation
    configs/triton_3_6_0/decode_attention_device_name=NVIDIA_H200.json   # attention stage 1
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEFAULT_DIR", "table_path"]

DEFAULT_DIR = Path(__file__).parent / "configs"


def table_path(
    kind: str,
    device_name: str,
    directory: str | Path | None = None,
    triton_version: str | None = None,
) -> Path:
    """``<directory>/triton_<version>/<kind>device_name=<name>.json`` (spaces in the device
    name become underscores; ``kind`` is '' or ends in '_'; version: the running Triton's)."""
    if triton_version is None:
        import triton

        triton_version = triton.__version__
    name = device_name.replace(" ", "_")
    version_dir = "triton_" + triton_version.replace(".", "_")
    return Path(directory or DEFAULT_DIR) / version_dir / f"{kind}device_name={name}.json"
