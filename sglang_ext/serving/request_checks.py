"""Reject bad requests with a 400 that names the problem, before they reach a scheduler.

sglang 0.4.7 answers 500 (a pydantic traceback) for an OpenAI request with a missing
``model``/``messages``/``prompt`` or a body that is not a JSON object, and 500 for an
unknown key in ``/generate``'s ``sampling_params``. Worse, some requests pass the
tokenizer manager and then kill the scheduler, ending the whole server: a
``logprob_start_len`` at or past the prompt's end trips an assertion in the logprob
bookkeeping; token ids outside the vocabulary index past the embedding table.
``check_generate`` rejects these in the tokenizer manager (the patched
``_validate_token_len`` calls it for every single and batched request), where a
``ValueError`` becomes a 400 for that request alone.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any, TypeVar

__all__ = ["BadRequest", "check_generate", "install_error_handlers", "parse_openai"]

logger = logging.getLogger(__name__)

M = TypeVar("M")


class BadRequest(ValueError):
    """A request the server refuses; the message says what to change."""


def _sampling_keys() -> frozenset[str]:
    from sglang.srt.sampling.sampling_params import SamplingParams

    return frozenset(
        p for p in inspect.signature(SamplingParams.__init__).parameters if p != "self"
    )


def _check_ids(what: str, ids: Iterable[Any], vocab_size: int) -> None:
    for i, t in enumerate(ids):
        if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < vocab_size:
            raise BadRequest(
                f"{what}[{i}] = {t!r} is not a token id of this model; "
                f"ids are integers in [0, {vocab_size})"
            )


def check_generate(obj: Any, input_ids: list[int] | None, vocab_size: int) -> None:
    """Raise ``BadRequest`` if one (already normalised) request would fail in the scheduler."""
    if input_ids is not None and getattr(obj, "input_embeds", None) is None:
        _check_ids("input_ids", input_ids, vocab_size)
    params = getattr(obj, "sampling_params", None) or {}
    if isinstance(params, dict):
        unknown = sorted(set(params) - _sampling_keys())
        if unknown:
            raise BadRequest(
                f"unknown sampling parameter(s) {unknown}; known: {sorted(_sampling_keys())}"
            )
        seed = params.get("sampling_seed")
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63
        ):
            raise BadRequest(f"seed / sampling_seed = {seed!r} must be an integer in [0, 2^63)")
    if not getattr(obj, "return_logprob", False):
        return
    n_in = len(input_ids) if input_ids is not None else 0
    start = obj.logprob_start_len
    if start is not None and start != -1 and not 0 <= start < n_in:
        raise BadRequest(
            f"logprob_start_len = {start} but the prompt has {n_in} tokens; use -1 (output "
            f"tokens only) or a value in [0, {n_in})"
        )
    top = obj.top_logprobs_num
    if top is not None and not 0 <= top <= vocab_size:
        raise BadRequest(f"top_logprobs_num = {top} must be in [0, {vocab_size}] (the vocabulary)")
    if obj.token_ids_logprob is not None:
        _check_ids("token_ids_logprob", obj.token_ids_logprob, vocab_size)


def parse_openai(model_cls: type[M], body: Any) -> M:
    """``model_cls(**body)``, with a ``BadRequest`` naming each bad or missing field."""
    from pydantic import ValidationError

    if not isinstance(body, dict):
        raise BadRequest(f"the request body must be a JSON object, got {type(body).__name__}")
    try:
        return model_cls(**body)
    except ValidationError as e:
        raise BadRequest(_describe(e, model_cls.__name__)) from None


def _describe(e: Any, what: str) -> str:
    parts = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err.get("loc", ())) or "(body)"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return f"invalid {what}: " + "; ".join(parts)


def install_error_handlers(app: Any) -> None:
    """Answer ``BadRequest`` and pydantic ``ValidationError`` with a 400, OpenAI-style."""
    from fastapi.responses import ORJSONResponse
    from pydantic import ValidationError

    def reply(message: str) -> Any:
        code = HTTPStatus.BAD_REQUEST.value
        body = {
            "object": "error",
            "message": message,
            "type": "BadRequestError",
            "param": None,
            "code": code,
        }
        return ORJSONResponse(content=body, status_code=code)

    async def on_bad_request(request: Any, exc: BadRequest) -> Any:
        logger.info("400 for %s: %s", request.url.path, exc)
        return reply(str(exc))

    async def on_validation_error(request: Any, exc: ValidationError) -> Any:
        logger.info("400 for %s: %s", request.url.path, exc)
        return reply(_describe(exc, exc.title))

    app.add_exception_handler(BadRequest, on_bad_request)
    app.add_exception_handler(ValidationError, on_validation_error)
