"""Time sglang 0.4.7's own prefill (``--pp-size 2`` / ``--tp-size 2``) on the model the
native engine runs: write the model as an HF checkpoint, start ``python -m
sglang_ext.launch_server`` on it, time ``/generate`` with ``max_new_tokens=1``, stop it."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import torch

from sglang_ext.engine.model import Qwen3ForCausalLM
from sglang_ext.net import post_json
from sglang_ext.perf.serving.server_process import ServerProcess

__all__ = [
    "save_hf_checkpoint",
    "time_sglang_prefill",
    "dummy_checkpoint",
    "prompt_ids",
    "bench_sglang",
]

logger = logging.getLogger(__name__)


def save_hf_checkpoint(model: Qwen3ForCausalLM, path: str | Path) -> Path:
    """config.json (qwen3_moe when the model has experts) + model.safetensors."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    a = model.args
    cfg = dataclasses.asdict(a)
    cfg["mlp_only_layers"] = list(a.mlp_only_layers)
    moe = a.num_experts > 0
    dtype = str(model.lm_head.weight.dtype).removeprefix("torch.")
    cfg.update(
        model_type="qwen3_moe" if moe else "qwen3",
        torch_dtype=dtype,
        hidden_act="silu",
        architectures=["Qwen3MoeForCausalLM" if moe else "Qwen3ForCausalLM"],
        max_position_embeddings=32768,
        use_sliding_window=False,
        attention_dropout=0.0,
    )
    (path / "config.json").write_text(json.dumps(cfg, indent=1))
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if a.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    save_file(state, str(path / "model.safetensors"))
    return path


def time_sglang_prefill(
    model_path: str,
    flags: list[str],
    prompts: dict[int, list[int]],
    *,
    repeats: int = 3,
    startup_timeout_s: float = 300.0,
    request_timeout_s: float = 300.0,
    log_file: str | None = None,
) -> dict[str, Any]:
    """Start the server with ``flags``; for each prompt time ``repeats`` prefills (the first
    one warms up; min and median of the rest are kept); stop the server.

    Returns ``{"startup_s": ..., "command": [...], "points": {prompt_len: {"prefill_s",
    "prefill_median_s", "all_s"}}}`` (``command``: the server's argv, ``{port}`` unfilled).
    """
    cmd = [
        sys.executable,
        "-m",
        "sglang_ext.launch_server",
        "--model-path",
        model_path,
        "--port",
        "{port}",
        "--skip-tokenizer-init",
        *flags,
    ]
    env = {}
    if "--device" in flags and flags[flags.index("--device") + 1] == "cpu":
        env["OMP_NUM_THREADS"] = "1"  # as the native engine's ranks: one thread each
    with ServerProcess(
        cmd,
        "http://127.0.0.1:{port}",
        ready_timeout_s=startup_timeout_s,
        env=env,
        log_path=log_file,
        expect_model=model_path,
    ) as srv:
        base = srv.base_url
        startup_s = srv.startup_s
        points = {}
        for plen, ids in prompts.items():
            body = {"input_ids": ids, "sampling_params": {"max_new_tokens": 1, "temperature": 0.0}}
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                post_json(base + "/generate", body, timeout=request_timeout_s)
                times.append(time.perf_counter() - t)
            warm = sorted(times[1:] or times)
            points[plen] = {
                "prefill_s": warm[0],
                "prefill_median_s": warm[len(warm) // 2],
                "all_s": times,
            }
        return {"startup_s": startup_s, "command": cmd, "points": points}


def dummy_checkpoint(
    preset: str,
    num_layers: int | None,
    dtype: torch.dtype,
    seed: int,
    path: str | Path,
    device: str = "cpu",
) -> Path:
    """The bench's random-weight model, saved for sglang. Built on the engine's ``device``: the
    random weights come from that device's generator, so they are the engine ranks' weights
    (and a big shape initialises in seconds on a GPU); the GPU copy is freed afterwards."""
    from sglang_ext.engine.model import load_model

    model = load_model(
        None, dummy_preset=preset, num_layers=num_layers, dtype=dtype, seed=seed, device=device
    )
    out = save_hf_checkpoint(model, path)
    del model
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
    return out


def prompt_ids(prompt_len: int, vocab_size: int, seed: int) -> list[int]:
    """The engine's ``--prompt-len`` prompt (``resolve_prompt``), for the same tokens in sglang."""
    g = torch.Generator().manual_seed(seed + 1)
    return torch.randint(0, vocab_size, (prompt_len,), generator=g).tolist()


SGLANG_CONFIGS = {
    "tp1": ["--tp-size", "1"],  # the baseline of ``ratio_to_sglang`` (sglang_ratio.py)
    "pp2": ["--pp-size", "2"],
    "tp2": ["--tp-size", "2"],
}


def bench_sglang(
    *,
    preset: str,
    num_layers: int | None,
    dtype: str,
    device: str,
    prompt_lens: list[int],
    configs: list[str],
    repeats: int,
    output: str,
    log_dir: str = "/tmp",
    extra_flags: list[str] | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Time sglang's prefill for each of ``configs`` (keys of SGLANG_CONFIGS) on the engine's
    ``--seed`` weights and prompts, with ``extra_flags`` appended to every server's flags;
    append records (``output`` None: return them only)."""
    import tempfile

    from sglang_ext.engine.model import DUMMY_PRESETS
    from sglang_ext.perf.records import append_jsonl, make_record

    bad = [c for c in configs if c not in SGLANG_CONFIGS]
    if bad:
        raise ValueError(f"sglang configs {bad} unknown; choose from {sorted(SGLANG_CONFIGS)}")
    tdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    vocab = DUMMY_PRESETS[preset]["vocab_size"]
    recs = []
    with tempfile.TemporaryDirectory(prefix="sp_pp_ckpt_") as d:
        ckpt = str(dummy_checkpoint(preset, num_layers, tdtype, seed, d, device))
        prompts = {n: prompt_ids(n, vocab, seed) for n in prompt_lens}
        for name in configs:
            # no radix cache: repeated (and prefix-sharing) prompts would otherwise be cache hits
            flags = [
                *SGLANG_CONFIGS[name],
                "--device",
                device,
                "--dtype",
                dtype,
                "--disable-radix-cache",
                *(extra_flags or []),
            ]
            res = time_sglang_prefill(
                ckpt, flags, prompts, repeats=repeats, log_file=f"{log_dir}/sglang_{name}.log"
            )
            for plen, pt in res["points"].items():
                cfg = {
                    "engine": f"sglang-0.4.7 {name}",
                    "sglang_config": name,
                    "dummy_preset": preset,
                    "num_layers": num_layers,
                    "device": device,
                    "dtype": dtype,
                    "prompt_len": plen,
                    "seed": seed,
                    "flags": flags,
                    "command": res["command"],
                }
                rec = make_record("sp_pp_sglang", cfg, {**pt, "startup_s": res["startup_s"]})
                if output:
                    append_jsonl(output, rec)
                recs.append(rec)
                logger.info(
                    "P=%d sglang %s prefill %.3fs (median %.3fs)",
                    plen,
                    name,
                    pt["prefill_s"],
                    pt["prefill_median_s"],
                )
    return recs
