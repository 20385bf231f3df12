"""Re-export of the package's one CLI generator (``sglang_ext.cli``) for the perf modules."""

from sglang_ext.cli import add_dataclass_args, dataclass_from_args, parse_float, parse_size

__all__ = ["add_dataclass_args", "dataclass_from_args", "parse_float", "parse_size"]
