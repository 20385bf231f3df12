"""serving/jit_warmup against a stub that fails or answers short: the error names the batch
and comes within the deadline (the real server's answer: tests/e2e/test_jit_warmup.py)."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sglang_ext.serving.jit_warmup import NEW_TOKENS, WARMUP_BATCHES, jit_warmup


def _stub(behaviour: str):
    seen = []

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body)
            if behaviour == "hang":
                time.sleep(5)
            if behaviour == "400" and len(seen) == 2:
                self.send_response(400)
                self.end_headers()
                self.wfile.write(b'{"error": "bad"}')
                return
            n = NEW_TOKENS - (behaviour == "short")
            out = [{"meta_info": {"completion_tokens": n}} for _ in body["input_ids"]]
            data = json.dumps(out).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)  # bound here and kept: no port race
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}", seen


def test_sends_each_batch_with_its_prompt_lengths():
    srv, url, seen = _stub("ok")
    try:
        jit_warmup(url)
    finally:
        srv.shutdown()
    assert [tuple(len(p) for p in b["input_ids"]) for b in seen] == list(WARMUP_BATCHES)
    assert all(b["sampling_params"]["max_new_tokens"] == NEW_TOKENS for b in seen)


@pytest.mark.parametrize("behaviour,match", [
    ("400", r"prompt lengths \(48, 48\) failed.*400"),
    ("short", r"the batch \(64,\) answered"),
    ("hang", r"\(64,\) failed.*timed out"),
])  # fmt: skip
def test_a_failed_batch_is_named_within_the_deadline(behaviour, match):
    srv, url, _ = _stub(behaviour)
    t0 = time.monotonic()
    try:
        with pytest.raises(RuntimeError, match=match):
            jit_warmup(url, deadline_s=1.0)
    finally:
        srv.shutdown()
    assert time.monotonic() - t0 < 4.5
