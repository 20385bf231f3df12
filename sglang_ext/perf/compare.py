"""Launch each server configuration in turn, load it identically, and report side by side.

For each ``label:extra server flags`` entry: start ``launcher + --host/--port + common
flags + extra flags`` in its own process group (:class:`ServerProcess`), wait for
``/health`` or ``/get_model_info``, warm up, run the same load at every QPS, stop the
whole group, and append one serving record per (config, QPS) with the label.  A markdown
report with tables and plots is written from the records.
"""

from __future__ import annotations

import json
import logging
import math
import shlex
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .loadgen import LoadConfig
from .records import append_jsonl
from .report import write_report
from .serve_bench import serving_record
from .server_process import ServerProcess, free_port

__all__ = ["CompareConfig", "parse_server_config", "server_vocab_size", "run_comparison"]

log = logging.getLogger(__name__)


@dataclass(kw_only=True, slots=True)
class CompareConfig:
    """A comparison of server configurations under the same load."""

    configs: tuple[str, ...] = field(
        default=("dp:--single-expert-mode dp", "tp:--single-expert-mode tp"),
        metadata={"help": "LABEL:FLAGS entries, one server each"},
    )
    server_args: str = field(
        default="",
        metadata={"help": "flags given to every server (e.g. --model-path X --tp-size 2)"},
    )
    launcher: str = field(
        default=f"{sys.executable} -m sglang_ext.launch_server",
        metadata={"help": "server command before the flags"},
    )
    host: str = field(default="127.0.0.1", metadata={"help": "server host"})
    qps: tuple[float, ...] = field(default=(math.inf,), metadata={"help": "request rates to run"})
    num_prompts: int = field(default=64, metadata={"help": "requests per QPS point"})
    sequence_length: int = field(default=128, metadata={"help": "input tokens"})
    output_length: int = field(default=32, metadata={"help": "output tokens"})
    max_concurrency: int | None = field(
        default=None, metadata={"help": "cap on in-flight requests"}
    )
    vocab_size: int | None = field(
        default=None, metadata={"help": "else read from the server's tokenizer"}
    )
    warmup_requests: int = field(default=2, metadata={"help": "per server before measuring"})
    ready_timeout_s: float = field(default=900.0, metadata={"help": "server start-up limit"})
    out_dir: str = field(
        default="bench/results/compare", metadata={"help": "records, logs and report"}
    )

    def __post_init__(self) -> None:
        labels = [parse_server_config(c)[0] for c in self.configs]
        if len(set(labels)) != len(labels):
            raise ValueError(f"config labels must be unique, got {labels}")
        if not self.qps or any(not q > 0 for q in self.qps):
            raise ValueError(f"qps must be positive rates (or inf), got {self.qps}")


def parse_server_config(entry: str) -> tuple[str, list[str]]:
    """``"tp:--single-expert-mode tp --tp-size 2"`` -> ``("tp", [flags...])``."""
    label, sep, flags = entry.partition(":")
    if not sep or not label.strip():
        raise ValueError(
            f"server config {entry!r} must look like LABEL:FLAGS, e.g. 'tp:--single-expert-mode tp'"
        )
    return label.strip(), shlex.split(flags)


def server_vocab_size(base_url: str) -> int | None:
    """Vocabulary size of the server's tokenizer, when its path is readable from here."""
    try:
        with urllib.request.urlopen(base_url + "/get_model_info", timeout=10) as r:
            info = json.load(r)
        path = info.get("tokenizer_path") or info.get("model_path")
        if not path or not Path(path).exists():
            return None
        from transformers import AutoTokenizer

        return len(AutoTokenizer.from_pretrained(path))
    except Exception as e:  # noqa: BLE001 - any failure means "unknown": the caller decides
        log.warning("could not read the server's vocabulary (%s)", e)
        return None


def run_comparison(cfg: CompareConfig) -> tuple[list[dict[str, Any]], Path]:
    """Run every configuration; returns (records, report path)."""
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    for entry in cfg.configs:
        label, flags = parse_server_config(entry)
        port = free_port()
        url = f"http://{cfg.host}:{port}"
        cmd = [
            *shlex.split(cfg.launcher),
            "--host",
            cfg.host,
            "--port",
            str(port),
            *shlex.split(cfg.server_args),
            *flags,
        ]
        with ServerProcess(
            cmd, url, ready_timeout_s=cfg.ready_timeout_s, log_path=out / f"server_{label}.log"
        ) as srv:
            vocab = cfg.vocab_size or server_vocab_size(url)
            if vocab is None:
                raise ValueError(f"cannot tell the vocabulary size of {label!r}: pass --vocab-size")
            for i, qps in enumerate(cfg.qps):
                load = LoadConfig(
                    base_url=url,
                    qps=qps,
                    num_prompts=cfg.num_prompts,
                    sequence_length=cfg.sequence_length,
                    output_length=cfg.output_length,
                    max_concurrency=cfg.max_concurrency,
                    vocab_size=vocab,
                    warmup_requests=cfg.warmup_requests if i == 0 else 0,
                    disable_progress=True,
                )
                rec = serving_record(
                    load,
                    extra_config={
                        "label": label,
                        "server_cmd": cmd,
                        "server_startup_s": srv.startup_s,
                    },
                )
                records.append(rec)
                append_jsonl(out / "compare.jsonl", rec)
    return records, write_report(
        records,
        out,
        title="EP vs TP: " + " vs ".join(parse_server_config(c)[0] for c in cfg.configs),
    )
