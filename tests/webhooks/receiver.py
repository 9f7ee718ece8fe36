"""A real HTTP receiver on 127.0.0.1 for webhook tests: it records every request and answers as scripted."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers requests in turn with `script` ("500", "hang", "302", "200", ...), then "200" for ever.

    "hang" never answers (until the receiver closes), so the sender's timeout fires; a number is
    answered with that status ("302" with a Location to /elsewhere on this receiver).
    """

    script: list[str] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        self.release = threading.Event()
        self.hanging = 0  # requests held open right now ("hang")
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802  (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.arrived:
                    receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    action = receiver.script.pop(0) if receiver.script else "200"
                    if action == "hang":
                        receiver.hanging += 1
                    receiver.arrived.notify_all()
                if action == "hang":
                    receiver.release.wait(120)
                    with receiver.lock:
                        receiver.hanging -= 1
                    return
                status = int(action)
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", f"http://127.0.0.1:{receiver.port}/elsewhere")
                payload = b"receiver says no" if status >= 400 else b"ok"
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_for(self, count: int, timeout: float = 120.0) -> list[Received]:
        """Block until `count` requests arrived (a generous deadline, never a measure of speed)."""
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.received) >= count, timeout=timeout)
            return list(self.received)

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
