"""Structured output on the CPU server (patch 0014), at TP 1 and TP 2.

Before the patch the first such request ended the server (xgrammar backend:
AttributeError 'apply_vocab_mask_cpu'). Each output is checked with a tool that knows
nothing of sglang or xgrammar: ``json`` + ``jsonschema``, ``re.fullmatch``, and a
hand-written JSON-prefix check for ``json_object`` (the random-weight model need not
close its object within the token budget, but every token must keep it valid JSON).
"""

import itertools
import json
import re

import jsonschema
import pytest

pytestmark = pytest.mark.slow

MESSAGES = [{"role": "user", "content": "Give me some JSON."}]
SCHEMA = {
    "type": "object",
    "properties": {
        "ok": {"type": "boolean"},
        "color": {"enum": ["red", "green", "blue"]},
        "n": {"type": "integer", "minimum": 0, "maximum": 99},
    },
    "required": ["ok", "color", "n"],
    "additionalProperties": False,
}
REGEX = r"[0-9]{3}-[a-z]{2,5}"
EBNF = 'root ::= answer " " num\nanswer ::= "yes" | "no"\nnum ::= [0-9] [0-9]?'
EBNF_AS_REGEX = r"(yes|no) [0-9][0-9]?"


def chat(server, **extra):
    body = {"model": "default", "messages": MESSAGES, "max_tokens": 120, "temperature": 0}
    out = server.ok("/v1/chat/completions", {**body, **extra})
    choice = out["choices"][0]
    return choice["message"]["content"], choice["finish_reason"]


def is_json_prefix(s: str) -> bool:
    """True if some short completion of ``s`` parses as JSON (so ``s`` is a valid prefix)."""
    stack, in_str, esc = [], False, False
    for ch in s:
        if in_str:
            esc, in_str = (False, True) if esc else (ch == "\\", ch != '"')
        elif ch == '"':
            in_str = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]":
            if not stack or stack.pop() != ch:
                return False
    closers = "".join(reversed(stack))
    tails = ["", "0", ":0", '"":0', "e", "ue", "rue", "alse", "lse", "se", "ull", "ll", "l"]
    heads = ['\\"', '"'] if esc else (['"'] if in_str else [""])
    for head, tail in itertools.product(heads, tails):
        try:
            json.loads(s + head + tail + closers)
            return True
        except ValueError:
            continue
    return False


def test_json_prefix_checker_can_fail():
    assert is_json_prefix('{"a": [1, tr') and is_json_prefix('{\t"k')
    assert (
        not is_json_prefix('{"a": 1}}') and not is_json_prefix('{"a" 1') and not is_json_prefix("x")
    )


def test_json_schema(server):
    text, finish = chat(
        server,
        response_format={"type": "json_schema", "json_schema": {"name": "t", "schema": SCHEMA}},
    )
    assert finish == "stop", f"the schema is finite, the object must close: {text!r}"
    jsonschema.validate(json.loads(text), SCHEMA)
    # the same through /generate's sampling_params
    # (xgrammar's JSON allows any whitespace; for many prompts this random-weight model
    # spends its whole budget on it, so the prompt is one that closes greedily)
    out = server.ok(
        "/generate",
        {
            "text": MESSAGES[0]["content"],
            "sampling_params": {
                "max_new_tokens": 120,
                "temperature": 0,
                "json_schema": json.dumps(SCHEMA),
            },
        },
    )
    jsonschema.validate(json.loads(out["text"]), SCHEMA)


def test_json_object(server):
    text, finish = chat(server, response_format={"type": "json_object"}, max_tokens=40)
    assert text.lstrip().startswith(("{", "[")) and is_json_prefix(text), text
    if finish == "stop":
        json.loads(text)


def test_regex(server):
    text, finish = chat(server, regex=REGEX)
    assert finish == "stop" and re.fullmatch(REGEX, text), text
    out = server.ok(
        "/generate",
        {
            "text": "Code:",
            "sampling_params": {"max_new_tokens": 40, "temperature": 0, "regex": REGEX},
        },
    )
    assert re.fullmatch(REGEX, out["text"]), out["text"]


def test_ebnf(server):
    text, finish = chat(server, ebnf=EBNF)
    assert finish == "stop" and re.fullmatch(EBNF_AS_REGEX, text), text


def test_regex_with_sampling_and_a_batch(server):
    """Several constrained rows in one batch, sampled, with logprobs: all stay valid."""
    out = server.ok(
        "/generate",
        {
            "text": ["a", "bb", "ccc"],
            "sampling_params": {"max_new_tokens": 40, "temperature": 1.0, "regex": REGEX},
            "return_logprob": True,
        },
    )
    for o in out:
        assert re.fullmatch(REGEX, o["text"]), o["text"]
    assert server.healthy()
