"""Model directories with real Qwen3-MoE shapes, pruned to one expert, for dummy-weight benchmarks.

``materialize("qwen3-30b-a3b-1e", dir)`` writes ``config.json``, ``generation_config.json`` and a
tokenizer into ``dir``; serve it with ``--model-path dir --load-format dummy``. No weights are
written and nothing is downloaded.

- The configs are the upstream Qwen3-30B-A3B / Qwen3-235B-A22B ``config.json`` files
  (``data/<model>/``), passed through the pruner's own ``single_expert_config`` (num_experts 1,
  num_experts_per_tok 1), so a preset describes exactly what ``python -m sglang_ext.prune``
  makes of the real checkpoint.
- The tokenizer is a synthetic byte-level BPE (``presets.tokenizer``) whose special tokens sit at
  Qwen3's ids (``<|im_end|>`` = 151645, ...) and whose length is Qwen3's 151669; config.json keeps
  ``vocab_size`` 151936, the embedding size. Texts tokenize to other ids than with the real
  tokenizer (fewer merges, so somewhat more tokens per text), which does not matter with dummy
  weights; benchmarks that need exact token counts should send token ids.
"""

from __future__ import annotations

import json
import logging
from importlib import resources
from pathlib import Path
from typing import Any

from ..prune.config import single_expert_config
from .tokenizer import QWEN3_REGULAR_VOCAB_SIZE, build_tokenizer

__all__ = ["PRESETS", "materialize", "preset_config"]

logger = logging.getLogger(__name__)

# preset name -> folder of upstream configs under data/
_SOURCES = {
    "qwen3-30b-a3b-1e": "qwen3-30b-a3b",
    "qwen3-235b-a22b-1e": "qwen3-235b-a22b",
}
PRESETS: tuple[str, ...] = tuple(_SOURCES)

_README = """# {name}

Shapes of {upstream} with every MoE layer pruned to one expert. No weights: serve with
`--model-path <this dir> --load-format dummy`. Written by `sglang_ext.presets.materialize`.
The tokenizer is synthetic (offline byte-level BPE with Qwen3's special-token ids), not Qwen's.
"""


def _data(folder: str, file: str) -> dict[str, Any]:
    return json.loads(resources.files(__package__).joinpath("data", folder, file).read_text())


def _source(name: str) -> str:
    if name not in _SOURCES:
        raise ValueError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    return _SOURCES[name]


def preset_config(name: str) -> dict[str, Any]:
    """The HF config dict of a preset (one expert, real shapes)."""
    return single_expert_config(_data(_source(name), "config.json"))


def materialize(name: str, dst_dir: str | Path) -> Path:
    """Write the preset's model directory into ``dst_dir`` (created if missing) and return it.

    Refuses a directory holding files other than those a preset writes, so it never mixes into
    a real checkpoint; re-materializing into the same directory rewrites the same bytes.
    """
    folder = _source(name)
    dst = Path(dst_dir)
    ours = {
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "README.md",
    }
    if dst.exists():
        if not dst.is_dir():
            raise FileExistsError(f"{dst} is a file: give a directory for the preset")
        foreign = sorted(p.name for p in dst.iterdir() if p.name not in ours)
        if foreign:
            raise FileExistsError(
                f"{dst} holds other files ({', '.join(foreign[:5])}): use a new or empty directory"
            )
    dst.mkdir(parents=True, exist_ok=True)
    config = preset_config(name)
    generation = _data(folder, "generation_config.json")
    (dst / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (dst / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    build_tokenizer(dst, vocab_size=QWEN3_REGULAR_VOCAB_SIZE)
    (dst / "README.md").write_text(_README.format(name=name, upstream=folder))
    logger.info("materialized preset %s in %s", name, dst)
    return dst
