"""Launch each server configuration in turn, load it identically, and report side by side.

For each ``label:extra server flags`` entry: start ``launcher + --host/--port + common
flags + extra flags`` in its own process group (:class:`ServerProcess`), wait until it
is ready, check its greedy tokens on fixed prompts (``greedy`` record: every
configuration computes the same model, so they must agree), warm up, run the same load
at every QPS ``repeats`` times, stop the whole group.  One ``serve`` record per
(config, QPS, repeat) is appended as soon as it is measured, with the label, the exact
server command and the equivalent client command.  A markdown report with verdicts,
tables and plots is written from the records.
"""

from __future__ import annotations

import json
import logging
import math
import shlex
import sys
import urllib.request
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sglang_ext.net import post_json
from sglang_ext.perf.records import append_jsonl, make_record
from sglang_ext.perf.report.markdown import write_report

from .loadgen import LoadConfig
from .serve_bench import serving_record
from .server_process import ServerProcess, free_port

__all__ = [
    "CompareConfig",
    "parse_server_config",
    "server_vocab_size",
    "client_command",
    "greedy_tokens",
    "run_comparison",
]

logger = logging.getLogger(__name__)
OnRecord = Callable[[dict[str, Any]], None]


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
    repeats: int = field(
        default=1, metadata={"help": "runs of every QPS point (spread and confidence interval)"}
    )
    vocab_size: int | None = field(
        default=None, metadata={"help": "else read from the server's tokenizer"}
    )
    warmup_requests: int = field(default=2, metadata={"help": "per server before measuring"})
    greedy_prompts: int = field(
        default=2,
        metadata={"help": "fixed prompts whose greedy tokens every config must agree on (0: off)"},
    )
    greedy_tokens: int = field(default=8, metadata={"help": "tokens per greedy check prompt"})
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
        if self.repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {self.repeats}")
        if self.greedy_prompts < 0 or self.greedy_tokens < 1:
            raise ValueError(
                f"need greedy_prompts >= 0 and greedy_tokens >= 1, got "
                f"{self.greedy_prompts}, {self.greedy_tokens}"
            )


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
        logger.warning("could not read the server's vocabulary (%s)", e)
        return None


def client_command(load: LoadConfig) -> list[str]:
    """The ``bench/serve_load.py`` command line that runs the same load by hand."""
    cmd = ["python", "bench/serve_load.py", "--base-url", load.base_url]
    for flag, v in (
        ("--qps", load.qps),
        ("--num-prompts", load.num_prompts),
        ("--sequence-length", load.sequence_length),
        ("--output-length", load.output_length),
        ("--max-concurrency", load.max_concurrency),
        ("--vocab-size", load.vocab_size),
        ("--seed", load.seed),
        ("--warmup-requests", load.warmup_requests),
    ):
        if v is not None:
            cmd += [flag, str(v)]
    return cmd


def greedy_tokens(base_url: str, prompts: list[list[int]], n: int) -> list[list[int]]:
    """The server's greedy output ids (``/generate``, temperature 0, ignore_eos)."""
    out = []
    for ids in prompts:
        res = post_json(
            base_url + "/generate",
            {
                "input_ids": ids,
                "sampling_params": {"max_new_tokens": n, "temperature": 0, "ignore_eos": True},
                "return_logprob": True,
            },
            timeout=300.0,
        )
        out.append([int(t[1]) for t in res["meta_info"]["output_token_logprobs"]])
    return out


def _greedy_prompts(cfg: CompareConfig, vocab: int) -> list[list[int]]:
    rng = np.random.default_rng(1234)
    lens = [max(1, cfg.sequence_length // (k + 1)) for k in range(cfg.greedy_prompts)]
    return [rng.integers(0, vocab, size=n).tolist() for n in lens]


def _point_key(label: str, qps: float, repeat: int) -> tuple[str, float, int]:
    return (label, float(qps), int(repeat))


def run_comparison(
    cfg: CompareConfig,
    *,
    done: Container[tuple[str, float, int]] = (),
    on_record: OnRecord | None = None,
    progress: Any | None = None,
    report: bool = True,
) -> tuple[list[dict[str, Any]], Path | None]:
    """Run every configuration; returns (records made now, report path or None).

    ``done``: (label, qps, repeat) points already measured (skipped; a configuration
    with every point done is not started).  ``on_record`` sees each record as it is
    appended; ``progress`` (a tqdm bar) is advanced once per point.
    """
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []

    def emit(rec: dict[str, Any]) -> None:
        records.append(rec)
        append_jsonl(out / "compare.jsonl", rec)
        if on_record is not None:
            on_record(rec)

    for entry in cfg.configs:
        label, flags = parse_server_config(entry)
        todo = [
            (qps, rep)
            for rep in range(cfg.repeats)
            for qps in cfg.qps
            if _point_key(label, qps, rep) not in done
        ]
        if not todo:
            logger.info("%s: every point already measured", label)
            continue
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
            if cfg.greedy_prompts:
                prompts = _greedy_prompts(cfg, vocab)
                tokens = greedy_tokens(url, prompts, cfg.greedy_tokens)
                emit(
                    make_record(
                        "greedy",
                        {"label": label, "server_cmd": cmd, "max_new_tokens": cfg.greedy_tokens},
                        {"prompts": prompts, "output_ids": tokens},
                    )
                )
            for i, (qps, rep) in enumerate(todo):
                load = LoadConfig(
                    base_url=url,
                    qps=qps,
                    num_prompts=cfg.num_prompts,
                    sequence_length=cfg.sequence_length,
                    output_length=cfg.output_length,
                    max_concurrency=cfg.max_concurrency,
                    vocab_size=vocab,
                    seed=rep,
                    warmup_requests=cfg.warmup_requests if i == 0 else 0,
                    disable_progress=True,
                )
                rec = serving_record(
                    load,
                    extra_config={
                        "label": label,
                        "repeat": rep,
                        "server_cmd": cmd,
                        "client_cmd": client_command(load),
                        "server_startup_s": srv.startup_s,
                    },
                )
                emit(rec)
                if progress is not None:
                    progress.update(1)
    if not report:
        return records, None
    return records, write_report(
        records,
        out,
        title="EP vs TP: " + " vs ".join(parse_server_config(c)[0] for c in cfg.configs),
    )
