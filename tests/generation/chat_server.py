"""A real chat-completions HTTP server on 127.0.0.1 for the OpenAI-compatible backend's tests."""
from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ChatServer:
    """A small chat completions server whose behaviour depends on the last user message.

    "rate-limit": 429 once, then fine. "flaky": 500 once, then fine. "too long": 400 always.
    "down": 503 always. "stingy": one choice per answer, whatever n. Anything else: n choices.
    """

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.lock = threading.Lock()
        self.calls: Counter = Counter()
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    server.bodies.append(body)
                    server.headers.append(self.headers)  # case-insensitive, as HTTP header names are
                    text = body["messages"][-1]["content"]
                    server.calls[text] += 1
                    calls = server.calls[text]
                try:
                    time.sleep(server.delay)
                    if self.path != "/v1/chat/completions":
                        return self._send(404, {"error": {"message": "no such route"}})
                    if "rate-limit" in text and calls == 1:
                        return self._send(429, {"error": {"message": "slow down"}}, {"Retry-After": "0"})
                    if "flaky" in text and calls == 1:
                        return self._send(500, {"error": {"message": "internal"}})
                    if "down" in text:
                        return self._send(503, {"error": {"message": "overloaded"}})
                    if "too long" in text:
                        return self._send(400, {"error": {"message": "This model's maximum context length is 8 tokens"}})
                    count = 1 if "stingy" in text else body["n"]
                    choices = [
                        {
                            "index": i,
                            "message": {"role": "assistant", "content": f"{body['model']} says {i} to {text} ({calls})"},
                            "finish_reason": "length" if i == 0 else "stop",
                        }
                        for i in range(count)
                    ]
                    return self._send(200, {"choices": choices, "usage": {"completion_tokens": 5 * count}})
                finally:
                    with server.lock:
                        server.in_flight -= 1

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
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
