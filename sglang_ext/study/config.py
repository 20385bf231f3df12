"""The study's configuration: typed dataclasses, filled from a TOML file (``tomllib``).

``load_config(mode, path)`` starts from the mode's defaults (:func:`quick_config`, the
small CPU run, or :func:`comprehensive_config`, the GPU sweep), then overrides every key
the file gives.  A key that is not a field is an error naming the key and the valid ones;
a value of the wrong type is an error naming the key, the value and the type wanted.

File layout (every table and key optional)::

    steps = ["env", "bandwidth", "latency", "scaling", "serving", "sp_pp", "profile", "report"]
    [model]     path = "/models/Qwen3-30B-A3B-1e"   # or preset = "qwen3-30b-a3b-1e" (dummy weights)
    [bandwidth] max_bytes = 1073741824
    [latency]   batch_sizes = [1, 8, 32]
    [scaling]   tp_sizes = [1, 2, 4, 8]
    [serving]   qps = [2.0, 8.0, inf]   configs = ["tp:--tp-size 8 --single-expert-mode tp"]
    [sp_pp]     nprocs = [1, 2, 4]
    [profile]   labels = ["tp", "dp"]
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

__all__ = [
    "STEPS",
    "ModelConfig",
    "BandwidthConfig",
    "LatencyConfig",
    "ScalingConfig",
    "ServingConfig",
    "SpPpConfig",
    "ProfileStepConfig",
    "StudyConfig",
    "quick_config",
    "comprehensive_config",
    "load_config",
    "ConfigError",
]

STEPS: tuple[str, ...] = (
    "env",
    "bandwidth",
    "latency",
    "scaling",
    "serving",
    "sp_pp",
    "profile",
    "report",
)


class ConfigError(ValueError):
    """A study config that cannot be used; the message names the key and the fix."""


@dataclass(kw_only=True, slots=True)
class ModelConfig:
    """The model every serving and bench_one_batch step runs."""

    path: str = ""
    """Model directory; empty with no preset: the embedded tiny one-expert default."""
    preset: str = ""
    """A real-shape preset (``sglang_ext.presets.PRESETS``), served with dummy weights."""
    server_args: str = ""
    """Extra sglang flags for every server and bench_one_batch run (e.g. ``--dtype bfloat16``)."""

    def __post_init__(self) -> None:
        if self.path and self.preset:
            raise ConfigError(
                f"model.path ({self.path!r}) and model.preset ({self.preset!r}) are exclusive: "
                "give one"
            )


@dataclass(kw_only=True, slots=True)
class BandwidthConfig:
    """Step 2: device copies and collectives (nccl-tests definitions)."""

    min_bytes: int = 1024
    """Smallest message / copy size in bytes."""
    max_bytes: int = 1 << 20
    """Largest message / copy size in bytes."""
    factor: int = 4
    """Size multiplier between steps."""
    iters: int = 5
    """Timed iterations per size."""
    ranks: int = 0
    """Collective ranks: 0 = every GPU (NCCL), or 2 gloo ranks on a CPU host."""
    ops: tuple[str, ...] = ("all_reduce", "all_gather")
    """Collectives to time."""
    timeout_s: float = 300.0
    """Deadline for the whole collective sweep."""


@dataclass(kw_only=True, slots=True)
class LatencyConfig:
    """Step 3: latency vs sequence length and batch size (sglang.bench_one_batch)."""

    tp_size: int = 1
    """TP size of the run."""
    batch_sizes: tuple[int, ...] = (1, 4)
    """Batch sizes."""
    input_lens: tuple[int, ...] = (32, 128)
    """Input lengths in tokens."""
    output_len: int = 4
    """Output tokens (decode steps + 1)."""
    single_expert_mode: str = "tp"
    """--single-expert-mode of the run."""
    timeout_s: float = 600.0
    """Deadline for the run."""


@dataclass(kw_only=True, slots=True)
class ScalingConfig:
    """Step 4: TP overhead and scaling efficiency against TP 1 (sglang.bench_one_batch)."""

    tp_sizes: tuple[int, ...] = (1, 2)
    """TP sizes (1 is the reference)."""
    batch_sizes: tuple[int, ...] = (1,)
    """Batch sizes."""
    input_lens: tuple[int, ...] = (64,)
    """Input lengths in tokens."""
    output_len: int = 4
    """Output tokens."""
    single_expert_mode: str = "tp"
    """--single-expert-mode of the runs."""
    timeout_s: float = 600.0
    """Deadline per TP size."""


@dataclass(kw_only=True, slots=True)
class ServingConfig:
    """Step 5: the dp-vs-tp serving comparison (sglang_ext.perf.serving.compare)."""

    configs: tuple[str, ...] = (
        "dp:--tp-size 2 --single-expert-mode dp",
        "tp:--tp-size 2 --single-expert-mode tp",
    )
    """LABEL:FLAGS per server; the first is the baseline of every ratio."""
    launcher: str = ""
    """Server command before the flags; empty: this Python's ``-m sglang_ext.launch_server``."""
    qps: tuple[float, ...] = (4.0, math.inf)
    """Offered loads in req/s; ``inf`` sends every request at once (saturation)."""
    num_prompts: int = 24
    """Requests per point."""
    sequence_length: int = 32
    """Input tokens per request."""
    output_length: int = 8
    """Output tokens per request (ignore_eos)."""
    max_concurrency: int = 0
    """Cap on requests in flight; 0: none."""
    repeats: int = 2
    """Runs of every point (spread, 95% CI)."""
    warmup_requests: int = 2
    """Requests per server before measuring."""
    greedy_prompts: int = 2
    """Fixed prompts whose greedy tokens every configuration must agree on (0: off)."""
    vocab_size: int = 0
    """Vocabulary for random prompt ids; 0: read from the server's tokenizer."""
    ready_timeout_s: float = 600.0
    """Start-up deadline per server."""


@dataclass(kw_only=True, slots=True)
class SpPpConfig:
    """Step 6: the SP+PP prefill sweep of sglang_ext.engine against its analytic model."""

    preset: str = "tiny-moe-1e"
    """Engine dummy preset (sglang_ext.engine.model.DUMMY_PRESETS)."""
    num_layers: int = 0
    """Keep the first N layers of the preset; 0: all."""
    dtype: str = "float32"
    """Weights and activations."""
    device: str = "auto"
    """cpu, cuda, or auto (cuda when available)."""
    prompt_lens: tuple[int, ...] = (256,)
    """Prompt lengths."""
    nprocs: tuple[int, ...] = (1, 2)
    """Rank counts (1 is the reference)."""
    syncs: tuple[str, ...] = ("pairwise", "ring")
    """KV synchronisation strategies."""
    chunk_size: int = 64
    """Prefill chunk size."""
    max_new_tokens: int = 2
    """Tokens decoded after prefill."""
    repeats: int = 2
    """Engine repeats (the last is kept)."""
    bw_gbps: float = 2.0
    """Link bandwidth for the model (GB/s)."""
    latency_us: float = 50.0
    """Link latency for the model (us)."""


@dataclass(kw_only=True, slots=True)
class ProfileStepConfig:
    """Step 7: per-layer profile of the served model (sglang_ext.profile, when present)."""

    labels: tuple[str, ...] = ("tp", "dp")
    """Serving configurations (labels of serving.configs) to profile."""
    options: dict[str, Any] = field(default_factory=dict)
    """Flags for ``python -m sglang_ext.profile`` (``{batch_size = 4, phase = "decode"}``)."""
    timeout_s: float = 600.0
    """Deadline per profiled configuration."""


@dataclass(kw_only=True, slots=True)
class StudyConfig:
    """Everything one study run needs."""

    steps: tuple[str, ...] = STEPS
    """Steps to run, of STEPS, in that order."""
    title: str = "dp vs tp: one-expert Qwen3-MoE"
    """Report title."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """The model."""
    bandwidth: BandwidthConfig = field(default_factory=BandwidthConfig)
    """Step 2."""
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    """Step 3."""
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    """Step 4."""
    serving: ServingConfig = field(default_factory=ServingConfig)
    """Step 5."""
    sp_pp: SpPpConfig = field(default_factory=SpPpConfig)
    """Step 6."""
    profile: ProfileStepConfig = field(default_factory=ProfileStepConfig)
    """Step 7."""

    def __post_init__(self) -> None:
        bad = [s for s in self.steps if s not in STEPS]
        if bad:
            raise ConfigError(f"unknown steps {bad} in 'steps'; valid steps: {list(STEPS)}")


def quick_config() -> StudyConfig:
    """The small default: the tiny default model on a 2-core CPU, <= 10 minutes."""
    return StudyConfig()


def comprehensive_config() -> StudyConfig:
    """The full sweep for a GPU host (8 GPUs assumed; shrink tp sizes for fewer)."""
    return StudyConfig(
        bandwidth=BandwidthConfig(
            max_bytes=1 << 30,
            factor=2,
            iters=20,
            ops=("all_reduce", "all_gather", "reduce_scatter", "broadcast", "sendrecv"),
            timeout_s=1200.0,
        ),
        latency=LatencyConfig(
            batch_sizes=(1, 8, 32, 64),
            input_lens=(256, 1024, 4096),
            output_len=16,
            timeout_s=1800.0,
        ),
        scaling=ScalingConfig(
            tp_sizes=(1, 2, 4, 8),
            batch_sizes=(1, 32),
            input_lens=(1024, 4096),
            output_len=16,
            timeout_s=1800.0,
        ),
        serving=ServingConfig(
            configs=(
                "dp:--tp-size 8 --single-expert-mode dp",
                "tp:--tp-size 8 --single-expert-mode tp",
            ),
            qps=(1.0, 4.0, 16.0, 64.0, math.inf),
            num_prompts=256,
            sequence_length=512,
            output_length=64,
            repeats=3,
            ready_timeout_s=1800.0,
        ),
        sp_pp=SpPpConfig(
            preset="qwen3-30b-a3b-1e",
            dtype="bfloat16",
            prompt_lens=(1024, 4096, 16384),
            nprocs=(1, 2, 4, 8),
            chunk_size=512,
            max_new_tokens=4,
        ),
    )


MODES = {"quick": quick_config, "comprehensive": comprehensive_config}


def _type_of(cls: type, name: str) -> Any:
    return typing.get_type_hints(cls)[name]


def _coerce(where: str, value: Any, tp: Any) -> Any:
    """Check ``value`` against annotation ``tp``; lists become tuples; ints widen to float."""
    origin = typing.get_origin(tp)
    if origin is tuple:
        (elem, *_rest) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        return tuple(_coerce(f"{where}[{i}]", v, elem) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table, got {value!r}")
        return dict(value)
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where} must be a number (inf allowed), got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be an integer, got {value!r}")
    if tp is bool or tp is str:
        if isinstance(value, tp):
            return value
        raise ConfigError(f"{where} must be a {tp.__name__}, got {value!r}")
    return value


def _merge(obj: Any, data: dict[str, Any], where: str) -> Any:
    """A copy of dataclass ``obj`` with the keys of ``data`` applied (recursively)."""
    cls = type(obj)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    changes: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{where}.{key}" if where else key
        if key not in fields:
            raise ConfigError(
                f"unknown key {name!r} in the study config; valid keys"
                f"{' of [' + where + ']' if where else ''}: {sorted(fields)}"
            )
        cur = getattr(obj, key)
        if dataclasses.is_dataclass(cur):
            if not isinstance(value, dict):
                raise ConfigError(f"{name} must be a table ([{name}]), got {value!r}")
            changes[key] = _merge(cur, value, name)
        else:
            changes[key] = _coerce(name, value, _type_of(cls, key))
    try:
        return dataclasses.replace(obj, **changes)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"[{where or 'top level'}]: {e}") from e


def load_config(mode: str, path: str | Path | None = None) -> StudyConfig:
    """The defaults of ``mode`` (quick, comprehensive, or check), overridden by the TOML file."""
    base = MODES.get(mode, quick_config)()
    if path is None:
        return base
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {p} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p} is not valid TOML: {e}") from e
    try:
        return _merge(base, data, "")
    except ConfigError as e:
        raise ConfigError(f"{p}: {e}") from None


def config_dict(cfg: StudyConfig) -> dict[str, Any]:
    """The config as plain data (for records and the resume check)."""
    return dataclasses.asdict(cfg)
