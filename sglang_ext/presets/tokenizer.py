"""A small, deterministic, offline Qwen3-style tokenizer for dummy-weight models.

There is no model hub here, so real Qwen3 tokenizer files cannot be fetched. This module builds a
byte-level BPE tokenizer locally instead:

- the merges are trained with the ``tokenizers`` library on a corpus generated from a fixed word
  list (``_corpus``), so every run writes the same bytes, offline, in well under a second;
- the vocabulary is then padded with unreachable ``<|reserved_N|>`` tokens up to ``vocab_size``
  ordinary tokens, and Qwen3's 26 added tokens follow at ids ``vocab_size ..``. With the default
  ``vocab_size=151643`` the special ids are exactly Qwen3's (``<|endoftext|>`` 151643,
  ``<|im_start|>`` 151644, ``<|im_end|>`` 151645, ...), and ``len(tokenizer)`` is 151669 as for
  the real tokenizer, while the model's ``vocab_size`` (151936) stays in config.json;
- ``tokenizer_config.json`` carries a Qwen3-style chat template
  (``<|im_start|>role\\n...<|im_end|>\\n``, with ``enable_thinking=False`` support).

Text encodes to different ids than with the real Qwen3 tokenizer (fewer merges): fine for
dummy weights and benchmarks, where only lengths and the chat format matter.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

__all__ = [
    "QWEN3_REGULAR_VOCAB_SIZE",
    "QWEN3_ADDED_TOKENS",
    "CHAT_TEMPLATE",
    "build_tokenizer",
    "special_token_ids",
]

QWEN3_REGULAR_VOCAB_SIZE = 151643
"""Ordinary (non-added) tokens of the real Qwen3 tokenizer; its added tokens start here."""

# (content, special) in Qwen3's id order, starting at the regular vocab size.
QWEN3_ADDED_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
)

CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{%- endif %}"
)

_MIN_VOCAB = 256  # the byte-level alphabet
_MAX_MERGE_VOCAB = 4096  # learned tokens at most; the rest of vocab_size is reserved padding

_WORDS = """
the of and to in is that for it as was with be by on not he this are or his from at which but
have an they you were her she there been one all we their has would when if so no what up out
who about more them into some could time than other its only new also two these may first then
any do like over such our man me even most made after well many before must through back years
where much your way down should because each just those people how too little state good very
make world still own see men work long get here between both life being under never day same
another know while last might us great old year off come since against go came right used take
three model token tokens server request requests batch prefill decode expert experts router
layer layers hidden size attention head heads cache memory device tensor tensors kernel launch
throughput latency benchmark prompt prompts output input sequence parallel pipeline stage rank
python def return class import self none true false print list dict string value values file
question answer explain write story poem code function please summary summarize translate hello
thanks user assistant system think reasoning step steps example examples data science history
""".split()

_PUNCT = (".", ",", "?", "!", ":", ";", "", "", "", "")


def _corpus(num_lines: int = 3000, seed: int = 0) -> Iterator[str]:
    """Deterministic pseudo-English lines (fixed word list, fixed seed): the BPE training text."""
    rng = random.Random(seed)
    for i in range(num_lines):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(4, 16))]
        if i % 3 == 0:
            words[0] = words[0].capitalize()
        line = " ".join(w + rng.choice(_PUNCT) for w in words)
        yield line + (f" {rng.randint(0, 9999)}" if i % 5 == 0 else "")


def special_token_ids(vocab_size: int = QWEN3_REGULAR_VOCAB_SIZE) -> dict[str, int]:
    """Ids of the added tokens in a tokenizer built with ``build_tokenizer(..., vocab_size)``."""
    return {content: vocab_size + i for i, (content, _) in enumerate(QWEN3_ADDED_TOKENS)}


def _train(vocab_size: int) -> dict:
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=min(vocab_size, _MAX_MERGE_VOCAB),
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    return json.loads(tok.to_str())


def build_tokenizer(dst_dir: str | Path, vocab_size: int = QWEN3_REGULAR_VOCAB_SIZE) -> Path:
    """Write a Qwen3-style fast tokenizer into ``dst_dir`` and return that directory.

    Args:
        dst_dir: directory to write ``tokenizer.json``, ``tokenizer_config.json`` and
            ``special_tokens_map.json`` into (created if missing; those files are overwritten).
        vocab_size: number of ordinary tokens (ids ``0 .. vocab_size-1``). The 26 Qwen3 added
            tokens take ids ``vocab_size .. vocab_size+25`` (see ``special_token_ids``), so
            ``len(tokenizer) == vocab_size + 26``; a model using it needs an embedding of at
            least that many rows. The default reproduces Qwen3's ids.

    Deterministic: the same ``vocab_size`` always writes byte-identical files.
    """
    if not isinstance(vocab_size, int) or vocab_size < _MIN_VOCAB:
        raise ValueError(
            f"vocab_size={vocab_size!r} is too small: a byte-level BPE needs at least "
            f"{_MIN_VOCAB} ordinary tokens (one per byte); pass vocab_size >= {_MIN_VOCAB}"
        )
    dst = Path(dst_dir)
    dst.mkdir(parents=True, exist_ok=True)

    spec = _train(vocab_size)
    vocab: dict[str, int] = spec["model"]["vocab"]
    # Pad with tokens no merge can produce, so ids up to vocab_size-1 all decode to something.
    for i in range(len(vocab), vocab_size):
        vocab[f"<|reserved_{i}|>"] = i
    ids = special_token_ids(vocab_size)
    spec["added_tokens"] = [
        {
            "id": ids[content],
            "content": content,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": special,
        }
        for content, special in QWEN3_ADDED_TOKENS
    ]
    # Round-trip through the library so a malformed spec fails here, not at load time.
    tok = Tokenizer.from_str(json.dumps(spec))
    tok.save(str(dst / "tokenizer.json"), pretty=False)

    added_decoder = {
        str(ids[content]): {
            "content": content,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": special,
        }
        for content, special in QWEN3_ADDED_TOKENS
    }
    extra_special = [c for c, special in QWEN3_ADDED_TOKENS if special and c != "<|endoftext|>"]
    tokenizer_config = {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": added_decoder,
        "additional_special_tokens": extra_special,
        "bos_token": None,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": 131072,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }
    special_map = {
        "additional_special_tokens": extra_special,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
    }
    for name, obj in (
        ("tokenizer_config.json", tokenizer_config),
        ("special_tokens_map.json", special_map),
    ):
        (dst / name).write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    return dst
