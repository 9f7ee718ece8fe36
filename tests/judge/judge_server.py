"""A real chat-completions server on 127.0.0.1 that answers like a judge; the model name picks the behaviour.

"logprobs": the letter A with top_logprobs A (-0.2) and B (-1.8); "letter-b": content "B", no
logprobs; "malformed": content "A" with logprobs that are not a list; "neither": "Maybe" with
top_logprobs that hold no letter; "rate-limit": 429 always; "broken": 500 always; "prefers-marker":
the letter of the response containing "zq" (logprobs -0.05 / -3.0), for whole runs.
"""
from __future__ import annotations

import json
import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _top(pairs):
    return [{"token": t, "logprob": lp, "bytes": None} for t, lp in pairs]


class JudgeServer:
    def __init__(self) -> None:
        self.calls: Counter = Counter()
        self.bodies: list[dict] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                model = body["model"]
                with server.lock:
                    server.calls[model] += 1
                    server.bodies.append(body)
                if model == "rate-limit":
                    return self._send(429, {"error": {"message": "slow down"}}, {"Retry-After": "0"})
                if model == "broken":
                    return self._send(500, {"error": {"message": "internal error"}})
                if model == "unknown":
                    return self._send(404, {"error": {"message": "The model `unknown` does not exist."}})
                content, logprobs = "A", None
                if model == "logprobs":
                    logprobs = {"content": [{"token": "A", "logprob": -0.2, "bytes": None,
                                             "top_logprobs": _top([("A", -0.2), ("B", -1.8), ("The", -4.0)])}]}
                elif model == "letter-b":
                    content = "B"
                elif model == "malformed":
                    logprobs = {"content": "not a list"}
                elif model == "neither":
                    content = "Maybe"
                    logprobs = {"content": [{"token": "Maybe", "logprob": -0.1, "bytes": None,
                                             "top_logprobs": _top([("Maybe", -0.1), ("I", -2.5)])}]}
                elif model == "prefers-marker":
                    prompt = body["messages"][-1]["content"]
                    a = re.search(r"Response A:\n(.*?)\n\nResponse B:", prompt, re.S).group(1)
                    win, lose = ("A", "B") if "zq" in a else ("B", "A")
                    content = win
                    logprobs = {"content": [{"token": win, "logprob": -0.05, "bytes": None,
                                             "top_logprobs": _top([(win, -0.05), (lose, -3.0)])}]}
                choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "length",
                          "logprobs": logprobs}
                return self._send(200, {"id": "x", "object": "chat.completion", "created": 0, "model": model, "choices": [choice]})

            def _send(self, status, payload, headers=None):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> JudgeServer:
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def closed_port_url() -> str:
    """A base URL where nothing listens (a port just released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
