"""A local stand-in for Kaggle's API that records what the real `kaggle` CLI sends (tests only, 127.0.0.1 only).

The CLI runs with KAGGLE_API_ENVIRONMENT=LOCALHOST, which makes it call http://localhost/api/v1/<Service>/<Method>,
and with HTTP_PROXY pointing here, so every request (RPCs, blob uploads, output downloads) arrives at this server
as an absolute-URI proxy request. Each RPC gets a small JSON reply shaped like kagglesdk's response types; the
kernel log stream that `kaggle kernels logs --follow` reads (GET /api/v1/kernels/logs/stream/<owner>/<slug>) gets
server-sent events, as Kaggle's endpoint sends them while a session runs.
"""

import io
import json
import threading
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

HOST = "http://localhost"
LIFETIME = 300  # seconds, the default lifetime
LOG_STREAM = "/api/v1/kernels/logs/stream/"
LOG_STREAM_END = "END_OF_LOG"  # the event that ends a live log stream (the CLI's _LOG_STREAM_END_SENTINEL)


@dataclass
class Request:
    """One request as received: method, path, headers (credentials redacted) and body."""

    verb: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def rpc(self) -> str:
        """The RPC method name (`SaveKernel` ...), or '' for uploads, downloads and the log stream."""
        return self.path.rsplit("/", 1)[-1] if self.verb == "POST" and self.path.startswith("/api/v1/") else ""

    def json(self) -> dict:
        """The JSON body."""
        return json.loads(self.body)


@dataclass
class Recorder:
    """A recording Kaggle API on 127.0.0.1: replies per RPC, errors on request, every request kept.

    Args:
        kernel_status: what GetKernelSessionStatus answers (`COMPLETE`, `ERROR`, ...), or a list of answers in
            turn (the last repeated).
        gpu_hours: (used, allowed) this week, what GetAcceleratorQuotaStatistics answers.
        competition_zip: the competition's data as a zip: DownloadDataFiles redirects to it (404 when None).
        model_tar: a Kaggle model instance version's files as a tar.gz: DownloadModelInstanceVersion redirects to it.
        token_user: the username IntrospectToken gives an API token.
        existing_datasets: `owner/slug` refs for which GetDatasetStatus answers 200 (404 for the others).
        outputs: file name -> bytes that ListKernelSessionOutput lists and that the download URLs serve.
        log_lines: what the kernel's log stream sends, one event each, then END_OF_LOG.
        log_stream_ends: False keeps the stream open after the lines, without END_OF_LOG, until the recorder stops
            (a stream that never ends).
        scoring: what GetSubmission answers in turn (the last repeated), each merged over the submission asked for,
            PENDING: e.g. {"status": "COMPLETE", "publicScore": "0.71"}, {"status": "ERROR", "errorDescription": ...}.
        replies: RPC name -> JSON merged into the default reply (e.g. {"SaveKernel": {"error": "..."}}).
        failures: RPC name (or LOG_STREAM, for the log stream) -> HTTP status to answer with an error body instead.
        lifetime: seconds after which the server stops by itself, whatever the test does.
    """

    kernel_status: str | list[str] = "COMPLETE"
    gpu_hours: tuple[float, float] = (12.5, 30.0)
    competition_zip: bytes | None = None
    model_tar: bytes | None = None
    token_user: str = "token-user"
    existing_datasets: set[str] = field(default_factory=set)
    outputs: dict[str, bytes] = field(default_factory=dict)
    log_lines: list[str] = field(default_factory=list)
    log_stream_ends: bool = True
    scoring: list[dict] = field(default_factory=list)
    replies: dict[str, dict] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    lifetime: float = LIFETIME
    requests: list[Request] = field(default_factory=list)
    blobs: dict[str, bytes] = field(default_factory=dict)

    def __enter__(self) -> "Recorder":
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        self._deadline = threading.Timer(self.lifetime, self._server.shutdown)
        self._deadline.daemon = True
        self._deadline.start()
        return self

    def __exit__(self, *exc) -> None:
        self._deadline.cancel()
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def environment(self, config_dir: Path) -> dict[str, str]:
        """Variables that send the CLI here, with no other proxy exception and its config in config_dir."""
        proxy = f"http://127.0.0.1:{self._server.server_address[1]}"
        return {
            "KAGGLE_API_ENVIRONMENT": "LOCALHOST",
            "KAGGLE_CONFIG_DIR": str(config_dir),
            "HTTP_PROXY": proxy,
            "http_proxy": proxy,
            "HTTPS_PROXY": proxy,
            "https_proxy": proxy,
            "NO_PROXY": "",
            "no_proxy": "",
        }

    def calls(self, rpc: str) -> list[dict]:
        """The JSON bodies of every call of one RPC, in order."""
        return [request.json() for request in self.requests if request.rpc == rpc]

    def rpcs(self) -> list[str]:
        """The RPC names received, in order."""
        return [request.rpc for request in self.requests if request.rpc]

    def reply(self, rpc: str, body: dict) -> tuple[int, dict]:
        """The status and JSON reply to one RPC call."""
        if rpc in self.failures:
            return self.failures[rpc], {"code": self.failures[rpc], "message": f"recorder refuses {rpc}"}
        default = self._default_reply(rpc, body)
        if default is None:
            return 404, {"code": 404, "message": f"recorder has no {rpc}"}
        if isinstance(default, int):
            return default, {"code": default, "message": "not found"}
        return 200, {**default, **self.replies.get(rpc, {})}

    def _default_reply(self, rpc: str, body: dict) -> dict | int | None:
        """The reply an accepting Kaggle would give, 404 as an int, or None for an RPC the recorder lacks."""
        calls = len(self.calls(rpc))
        if rpc == "SaveKernel":
            return {"ref": f"/code/{body['slug']}", "url": f"{HOST}/code/{body['slug']}", "versionNumber": calls}
        if rpc == "GetKernelSessionStatus":
            answers = [self.kernel_status] if isinstance(self.kernel_status, str) else self.kernel_status
            status = answers[min(calls, len(answers)) - 1]
            failure = {"failureMessage": "Notebook Threw Exception"} if status == "ERROR" else {}
            return {"status": status, **failure}
        if rpc == "IntrospectToken":  # an API token (KAGGLE_API_TOKEN / access_token) belongs to the test's user
            return {"active": True, "username": self.token_user}
        if rpc == "GetAcceleratorQuotaStatistics":
            used, allowed = self.gpu_hours
            gpu = {"timeUsed": f"{used * 3600:.0f}s", "totalTimeAllowed": f"{allowed * 3600:.0f}s"}
            return {"gpuQuota": gpu, "quotaRefreshTime": "2026-12-07T00:00:00Z"}
        if rpc == "ListKernelSessionOutput":
            files = [{"fileName": name, "url": f"{HOST}/output/{name}"} for name in self.outputs]
            return {"files": files, "log": '[{"stream_name":"stdout","data":"done\\n"}]'}
        if rpc == "GetDatasetStatus":
            ref = f"{body['ownerSlug']}/{body['datasetSlug']}"
            return {"status": "READY"} if ref in self.existing_datasets else 404
        if rpc == "StartBlobUpload":
            token = f"blob-{calls}"
            return {"token": token, "createUrl": f"{HOST}/upload/{token}"}
        if rpc in ("CreateDataset", "CreateDatasetVersion"):
            ref = f"{body.get('ownerSlug')}/{body.get('slug') or body.get('datasetSlug')}"
            return {"ref": ref, "url": f"{HOST}/datasets/{ref}", "status": "ok"}
        if rpc == "CreateCodeSubmission":
            return {"message": "Submission queued", "ref": 1000 + calls}
        if rpc == "ListSubmissions":  # the code submissions made so far, newest last
            made = self.calls("CreateCodeSubmission")
            return {
                "submissions": [
                    {
                        "ref": 1001 + number,
                        "fileName": call.get("fileName", ""),
                        "date": f"2026-12-04T10:{number:02d}:00Z",
                        "description": call.get("submissionDescription", ""),
                        "status": "PENDING",
                    }
                    for number, call in enumerate(made)
                ]
            }
        if rpc == "GetSubmission":
            answer = self.scoring[min(calls, len(self.scoring)) - 1] if self.scoring else {}
            return {"ref": body["ref"], "status": "PENDING", "date": "2026-12-04T10:00:00Z", **answer}
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        """The request handler class, bound to this recorder."""
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> Request:
                headers = {k: ("<redacted>" if k.lower() == "authorization" else v) for k, v in self.headers.items()}
                return Request(self.command, urlsplit(self.path).path, headers, self._body())

            def _body(self) -> bytes:
                if "chunked" not in self.headers.get("Transfer-Encoding", ""):
                    return self.rfile.read(int(self.headers.get("Content-Length") or 0))
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0], 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                self.rfile.readline()
                return b"".join(chunks)

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                request = self._record()
                recorder.requests.append(request)
                zipped = request.rpc == "DownloadDataFiles" and recorder.competition_zip is not None
                if zipped and request.rpc not in recorder.failures:
                    self.send_response(302)
                    self.send_header("Location", f"{HOST}/files/{request.json()['competitionName']}.zip")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if request.rpc == "DownloadModelInstanceVersion" and recorder.model_tar is not None:
                    self.send_response(302)
                    self.send_header("Location", f"{HOST}/models/{request.json()['instanceSlug']}.tar.gz")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status, reply = recorder.reply(request.rpc, request.json() if request.body else {})
                self._send(status, json.dumps(reply).encode(), "application/json")

            def do_PUT(self) -> None:
                request = self._record()
                recorder.requests.append(request)
                recorder.blobs[request.path.rsplit("/", 1)[-1]] = request.body
                self._send(200, b"{}", "application/json")

            def _stream_log(self) -> None:
                """The log as server-sent events of {stream_name, time, data}, one HTTP/1.1 chunk each, sent as it is
                written (the CLI reads a live stream chunk by chunk)."""
                self.protocol_version = "HTTP/1.1"
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Connection", "close")
                self.end_headers()
                for number, line in enumerate(recorder.log_lines):
                    event = {"stream_name": "stdout", "time": float(number), "data": f"{line}\n"}
                    self._chunk(f"data: {json.dumps(event)}\n\n".encode())
                if not recorder.log_stream_ends:
                    recorder._stopping.wait(recorder.lifetime)
                    return
                self._chunk(f"data: {LOG_STREAM_END}\n\n".encode())
                self._chunk(b"")

            def _chunk(self, data: bytes) -> None:
                """One chunk of a chunked reply (the empty one ends it)."""
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def do_GET(self) -> None:
                request = self._record()
                recorder.requests.append(request)
                name = request.path.removeprefix("/output/")
                if request.path.startswith(LOG_STREAM) and LOG_STREAM in recorder.failures:
                    status = recorder.failures[LOG_STREAM]
                    self._send(
                        status, json.dumps({"code": status, "message": "recorder refuses"}).encode(), "application/json"
                    )
                elif request.path.startswith(LOG_STREAM):
                    self._stream_log()
                elif request.path.startswith("/files/") and recorder.competition_zip is not None:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/zip")
                    self.send_header("Content-Length", str(len(recorder.competition_zip)))
                    self.send_header("Last-Modified", "Fri, 04 Dec 2026 10:00:00 GMT")
                    self.end_headers()
                    self.wfile.write(recorder.competition_zip)
                elif request.path.startswith("/models/") and recorder.model_tar is not None:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/gzip")
                    self.send_header("Content-Length", str(len(recorder.model_tar)))
                    self.send_header("Last-Modified", "Fri, 04 Dec 2026 10:00:00 GMT")
                    self.end_headers()
                    self.wfile.write(recorder.model_tar)
                elif name in recorder.outputs:
                    self._send(200, recorder.outputs[name], "application/octet-stream")
                else:
                    self._send(404, b"no such output", "text/plain")

            def log_message(self, *args) -> None:
                """Keep the test output clean."""

        return Handler


def competition_zip(folder: Path, leave_out: str = "") -> bytes:
    """A competition folder as the zip Kaggle serves (files at its top level), without `leave_out`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            name = str(path.relative_to(folder))
            if path.is_file() and name != leave_out:
                archive.write(path, name)
    return buffer.getvalue()
