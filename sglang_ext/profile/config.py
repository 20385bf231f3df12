"""The profile command's own flags (sglang's server flags come beside them)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["ProfileArgs", "PHASES"]

PHASES = ("prefill", "decode")


@dataclass(kw_only=True, slots=True)
class ProfileArgs:
    """What to run under the profiler, and where its outputs go."""

    phase: str = field(default="decode", metadata={"help": "step to profile", "choices": PHASES})
    """prefill: each step is a fresh prefill of the batch; decode: one prefill, then steps."""
    batch_size: int = field(default=4, metadata={"help": "requests per batch (per DP rank)"})
    """Requests in the batch (each DP-attention rank runs its own batch of this size)."""
    input_len: int = field(default=64, metadata={"help": "prompt tokens per request"})
    """Prompt length of every request (random ids, fixed seed)."""
    steps: int = field(default=3, metadata={"help": "measured steps (profiled and unprofiled)"})
    """Steps timed without the profiler, then the same steps under it."""
    warmup: int = field(default=1, metadata={"help": "untimed runs first"})
    """Whole untimed runs (prefill plus the decode steps) before the measured ones."""
    seed: int = field(default=0, metadata={"help": "prompt ids seed"})
    """Seed of the random prompt ids (DP-attention rank r uses seed + r)."""
    name: str = field(default="profile", metadata={"help": "trace stem: {name}_rank{r}.json"})
    """Stem of the Chrome traces."""
    output_dir: str = field(
        default="bench/results/traces", metadata={"help": "folder of the Chrome traces"}
    )
    """Where ``{name}_rank{r}.json`` go."""
    output_file: str = field(
        default="bench/results/profile.jsonl", metadata={"help": "JSONL record file (appended)"}
    )
    """The record is appended here."""
    profile_graph: bool = field(
        default=False, metadata={"help": "profile the CUDA-graph replay (no per-layer numbers)"}
    )
    """Default off: at decode on a GPU, sglang's CUDA graphs (unless ``--disable-cuda-graph``)
    time the served step unprofiled (``graph_step_wall_ms``), and the profiled steps run the
    same batch eagerly, so each kernel is tied to the layer and op that launched it. On, the
    profiled steps replay the graph: one launch for every kernel, so the record has the
    step's kernel totals and ``per_layer_us`` null with the reason."""
    deadline_s: float = field(default=600.0, metadata={"help": "whole-run deadline, seconds"})
    """All ranks must finish within this; then they are killed and the run fails."""

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise ValueError(f"--phase {self.phase!r}: use one of {PHASES}")
        for k in ("batch_size", "input_len", "steps"):
            if getattr(self, k) < 1:
                raise ValueError(f"--{k.replace('_', '-')} must be >= 1, got {getattr(self, k)}")
        if self.warmup < 0:
            raise ValueError(f"--warmup must be >= 0, got {self.warmup}")
        if not re.fullmatch(r"[\w.-]+", self.name):
            raise ValueError(f"--name {self.name!r} must be a plain file-name stem")
        if self.deadline_s <= 0:
            raise ValueError(f"--deadline-s must be > 0, got {self.deadline_s}")
