"""Lambda's Invoke REST API on 127.0.0.1, for tests of the driver side at scale.

``POST /2015-03-31/functions/<name>/invocations`` runs the event and answers
as Lambda does: status 200 with the handler's JSON, ``X-Amz-Function-Error``
when it failed (``errorType`` / ``errorMessage`` / ``stackTrace``),
``X-Amz-Log-Result`` (base64 of the log's last 4 KB, a ``REPORT`` line with the
billed duration) and keep-alive HTTP/1.1 connections, so a boto3 client keeps
its pooled sockets open between invocations as it does against AWS.

By default an event runs in this process on the server's thread for the
connection: the real runtime handler (:func:`runtime.handler.lambda_handler`),
which reads and writes S3 wherever ``AWS_ENDPOINT_URL`` points (a moto server).
That is cheap enough for thousands of tasks; ``run=`` replaces it (a
SubprocessInvoker's ``invoke`` runs the real package in a process instead).

The emulator counts what the driver did to it: requests, TCP connections
(one per client port) and the most requests in flight at once
(``GET /emulator/stats``).

    emu = LambdaEmulator()                 # in this process, on its threads
    emu = EmulatorProcess(env)             # or in a process of its own (another core)
    os.environ["AWS_ENDPOINT_URL_LAMBDA"] = emu.url
    ...
    emu.close()
"""

from __future__ import annotations

import base64
import json
import math
import os
import resource
import socket
import subprocess
import sys
import threading
import time
import traceback
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from sqlmr.aws.invoker import LOG_TAIL_BYTES, InvokeResult

INVOKE_PATH = "/2015-03-31/functions/"


def run_in_process(event: dict, memory_mb: int = 1769) -> InvokeResult:
    """One invocation of the real handler in this process, answered as Lambda
    answers (an exception becomes ``FunctionError: Unhandled``)."""
    from runtime import handler

    rid = str(uuid.uuid4())
    t0 = time.perf_counter()
    function_error = None
    try:
        payload = handler.lambda_handler(event, None)
        json.dumps(payload)
    except Exception as e:  # noqa: BLE001 — the function's error, returned as data
        function_error = "Unhandled"
        frames = traceback.format_list(traceback.extract_tb(e.__traceback__))
        payload = {"errorMessage": str(e), "errorType": type(e).__name__,
                   "requestId": rid, "stackTrace": frames}
    ms = (time.perf_counter() - t0) * 1000
    mem = max(1, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
    log = (f"START RequestId: {rid} Version: $LATEST\nEND RequestId: {rid}\n"
           f"REPORT RequestId: {rid}\tDuration: {ms:.2f} ms\tBilled Duration: "
           f"{max(1, math.ceil(ms))} ms\tMemory Size: {memory_mb} MB\t"
           f"Max Memory Used: {mem} MB\t\n")
    return InvokeResult(payload, function_error, log, max(1, math.ceil(ms)), 200, mem)


def run_echo(event: dict) -> InvokeResult:
    """An invocation that does no work: the answer of a task that wrote nothing
    (measures the driver's side of an invocation alone)."""
    payload = {"stage": event["stage"], "kind": event["kind"], "task": event["task"],
               "attempt": event["attempt"], "rows_in": 0, "bytes_in": 0, "rows_out": 0,
               "bytes_out": 0, "malformed": 0, "malformed_sample": "", "output": None,
               "seconds": 0.0, "cpu_seconds": 0.0, "peak_mem_mb": 1, "counters": {}}
    log = "REPORT RequestId: echo\tDuration: 0.10 ms\tBilled Duration: 1 ms\t" \
          "Memory Size: 1769 MB\tMax Memory Used: 1 MB\t\n"
    return InvokeResult(payload, None, log, 1, 200, 1)


RUNS = {"handler": run_in_process, "echo": run_echo}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024      # a burst of new connections is not refused


class LambdaEmulator:
    """The Invoke API on 127.0.0.1:<free port> (see the module docstring)."""

    def __init__(self, run: Callable[[dict], InvokeResult] = run_in_process) -> None:
        self.run = run
        self.lock = threading.Lock()
        self.requests = 0
        self.connections: set[tuple[str, int]] = set()
        self.in_flight = 0
        self.peak_in_flight = 0
        emu = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"   # keep-alive, as Lambda's endpoint

            def log_message(self, *a):
                pass

            def setup(self):
                super().setup()
                # headers and body go out as two writes: without this, Nagle's
                # algorithm and the client's delayed ACK add 40 ms an answer
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_GET(self):
                if self.path != "/emulator/stats":
                    self._answer(404, {"message": "no such path"}, {})
                    return
                self._answer(200, emu.stats(), {})

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not self.path.startswith(INVOKE_PATH):
                    self._answer(404, {"Type": "User", "message": "not an invoke path"},
                                 {"x-amzn-ErrorType": "ResourceNotFoundException"})
                    return
                with emu.lock:
                    emu.requests += 1
                    emu.connections.add(self.client_address)
                    emu.in_flight += 1
                    emu.peak_in_flight = max(emu.peak_in_flight, emu.in_flight)
                try:
                    r = emu.run(json.loads(body))
                finally:
                    with emu.lock:
                        emu.in_flight -= 1
                headers = {"X-Amz-Executed-Version": "$LATEST",
                           "X-Amz-Log-Result": base64.b64encode(
                               r.log_tail.encode()[-LOG_TAIL_BYTES:]).decode()}
                if r.function_error:
                    headers["X-Amz-Function-Error"] = r.function_error
                self._answer(200, r.payload, headers)

            def _answer(self, status: int, payload, headers: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                        name="lambda-emulator")
        self._thread.start()

    def stats(self) -> dict:
        with self.lock:
            return {"requests": self.requests, "connections": len(self.connections),
                    "peak_in_flight": self.peak_in_flight}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class EmulatorProcess:
    """A :class:`LambdaEmulator` running the real handler (``run="handler"``) or
    answering at once (``"echo"``, :func:`run_echo`) in a process of its own
    (``env``: its environment, e.g. the moto endpoint), until ``close()``."""

    def __init__(self, env: dict[str, str], run: str = "handler") -> None:
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), run], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self.close()
            raise RuntimeError("the Lambda emulator did not start")

    def stats(self) -> dict:
        with urllib.request.urlopen(self.url + "/emulator/stats", timeout=30) as r:
            return json.loads(r.read())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()          # the emulator ends when its stdin does
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


if __name__ == "__main__":
    emulator = LambdaEmulator(RUNS[sys.argv[1] if len(sys.argv) > 1 else "handler"])
    print(emulator.url, flush=True)
    sys.stdin.read()
    emulator.close()
