"""A real HTTP server on 127.0.0.1 that receives webhooks, and a runner for queued deliveries."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from django_q.models import OrmQ

from unpuzzle.webhooks.services import DELIVER_TASK
from unpuzzle.webhooks.tasks import webhook_deliver


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers by path: /ok 200, /status/<code> that status (with Retry-After from ?after=),
    /redirect 302, /slow/<s> after sleeping <s> seconds. Keeps every request it got."""

    port: int
    requests: list[Received] = field(default_factory=list)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@contextlib.contextmanager
def running_receiver() -> Iterator[Receiver]:
    """A receiver listening on a free port of 127.0.0.1 until the block ends."""
    box: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            path, _, query = self.path.partition("?")
            box["r"].requests.append(
                Received(path=self.path, headers={k.lower(): v for k, v in self.headers.items()}, body=body)
            )
            if path.startswith("/slow/"):
                time.sleep(float(path.rsplit("/", 1)[1]))
            if path.startswith("/status/"):
                self.send_response(int(path.rsplit("/", 1)[1]))
                if query.startswith("after="):
                    self.send_header("Retry-After", query.removeprefix("after=").replace("%20", " "))
            elif path == "/redirect":
                self.send_response(302)
                self.send_header("Location", box["r"].url("/ok"))
            else:
                self.send_response(200)
            answer = b"received " + b"x" * 1000
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            try:
                self.wfile.write(answer)
            except OSError:
                pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    box["r"] = Receiver(port=server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield box["r"]
    server.shutdown()
    server.server_close()


def queued_deliveries() -> list[str]:
    """Delivery ids waiting in the short-task cluster's queue."""
    return [row.task["args"][0] for row in OrmQ.objects.filter(key="unpuzzle") if row.task["func"] == DELIVER_TASK]


def run_queued_deliveries() -> int:
    """Run the queued delivery tasks, as the short-task cluster would; returns how many ran."""
    rows = [row for row in OrmQ.objects.filter(key="unpuzzle") if row.task["func"] == DELIVER_TASK]
    for row in rows:
        row.delete()
        webhook_deliver(row.task["args"][0])
    return len(rows)
