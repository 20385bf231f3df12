"""PrefillConfig: every knob of the SP+PP prefill engine, and the CLI generated from it."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from sglang_ext.cli import add_dataclass_args, dataclass_from_args
from sglang_ext.engine.attention import ATTENTION_BACKENDS
from sglang_ext.engine.pipeline import CHUNK_SCHEDULES

__all__ = ["PrefillConfig", "add_cli_args", "from_cli_args", "DTYPES", "SYNC_CHOICES"]

DTYPES = ("float32", "bfloat16", "float16")
SYNC_CHOICES = ("pairwise", "ring")


def _f(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass(kw_only=True, slots=True)
class PrefillConfig:
    """One prefill + redundant-decode run."""

    model_path: str | None = _f(None, "HF checkpoint folder (config.json + *.safetensors)")
    dummy_preset: str | None = _f(
        None, "random-weight model shape instead of a checkpoint (e.g. qwen3-30b-a3b-1e)"
    )
    num_layers: int | None = _f(None, "keep only the first N layers (shorter runs of a big shape)")
    prompt: str | None = _f(None, "prompt text (needs a tokenizer in --model-path)")
    prompt_ids: list[int] | None = _f(None, "prompt token ids, comma separated", comma=True)
    prompt_len: int | None = _f(None, "random prompt of this many tokens (seeded by --seed)")
    chunk_size: int = _f(128, "tokens per sequence chunk; the last chunk may be shorter")
    chunk_schedule: str = _f(
        "fixed",
        "fixed: chunks of --chunk-size tokens; balanced: as many chunks, of equal causal cost",
        choices=CHUNK_SCHEDULES,
    )
    attn_ratio: float | None = _f(
        None,
        "balanced schedule: attention cost of one (query, key) pair over one token's linear "
        "cost (default: from the model's FLOPs)",
    )
    stage_split: list[int] | None = _f(
        None, "layers per pipeline stage, comma separated (default: balanced)", comma=True
    )
    sync: str = _f("pairwise", "KV-cache synchronisation strategy", choices=SYNC_CHOICES)
    attention_backend: str = _f(
        "auto", "auto = flashinfer on CUDA if installed, else sdpa", choices=ATTENTION_BACKENDS
    )
    max_new_tokens: int = _f(16, "greedy tokens decoded (redundantly) on every rank")
    device: str = _f("cpu", "cpu (gloo) or cuda (NCCL)", choices=("cpu", "cuda"))
    dtype: str = _f("float32", "weights and activations dtype", choices=DTYPES)
    num_threads: int | None = _f(None, "torch threads per rank on CPU (bench uses 1)")
    repeats: int = _f(
        1, "run prefill+decode this many times (the first warms up; each logs a record)"
    )
    timeout_s: float = _f(60.0, "process-group timeout: a dead peer ends the run within this")
    seed: int = _f(0, "seed for random weights and random prompts")
    log_dir: str | None = _f(None, "write rank{r}.jsonl timing records here")
    dump_dir: str | None = _f(None, "torch.save each rank's tokens, logits and KV here (tests)")
    fault_rank: int | None = _f(None, "fault injection: this rank calls os._exit(1) ...")
    fault_after_chunk: int | None = _f(None, "... right after computing this chunk")

    def __post_init__(self) -> None:
        if (self.model_path is None) == (self.dummy_preset is None):
            raise ValueError("give exactly one of --model-path and --dummy-preset")
        n_prompts = sum(x is not None for x in (self.prompt, self.prompt_ids, self.prompt_len))
        if n_prompts != 1:
            raise ValueError("give exactly one of --prompt, --prompt-ids, --prompt-len")
        if self.prompt_len is not None and self.prompt_len < 1:
            raise ValueError(f"--prompt-len must be >= 1, got {self.prompt_len}")
        if self.prompt_ids is not None and not self.prompt_ids:
            raise ValueError("--prompt-ids is empty")
        if self.chunk_size < 1:
            raise ValueError(f"--chunk-size must be >= 1, got {self.chunk_size}")
        if self.max_new_tokens < 1:
            raise ValueError(f"--max-new-tokens must be >= 1, got {self.max_new_tokens}")
        if self.chunk_schedule not in CHUNK_SCHEDULES:
            raise ValueError(
                f"--chunk-schedule {self.chunk_schedule!r}; choose one of {CHUNK_SCHEDULES}"
            )
        if self.attn_ratio is not None and self.attn_ratio < 0:
            raise ValueError(f"--attn-ratio must be >= 0, got {self.attn_ratio}")
        if self.sync not in SYNC_CHOICES:
            raise ValueError(f"--sync {self.sync!r} unknown; choose one of {SYNC_CHOICES}")
        if self.attention_backend not in ATTENTION_BACKENDS:
            raise ValueError(
                f"--attention-backend {self.attention_backend!r}; choose one of {ATTENTION_BACKENDS}"
            )
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"--device {self.device!r}; choose cpu or cuda")
        if self.dtype not in DTYPES:
            raise ValueError(f"--dtype {self.dtype!r}; choose one of {DTYPES}")
        if self.repeats < 1:
            raise ValueError(f"--repeats must be >= 1, got {self.repeats}")
        if self.timeout_s <= 0:
            raise ValueError(f"--timeout-s must be > 0, got {self.timeout_s}")
        if (self.fault_rank is None) != (self.fault_after_chunk is None):
            raise ValueError("--fault-rank and --fault-after-chunk go together")


def add_cli_args(parser: argparse.ArgumentParser) -> None:
    """One kebab-case flag per PrefillConfig field (the package's one generator)."""
    add_dataclass_args(parser, PrefillConfig)


def from_cli_args(ns: argparse.Namespace) -> PrefillConfig:
    return dataclass_from_args(PrefillConfig, ns)
