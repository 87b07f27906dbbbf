"""A local stand-in for the Hugging Face hub (tests only, 127.0.0.1 only): what timm and transformers fetch through
huggingface_hub when HF_ENDPOINT points here. Files are served from memory; every request is kept."""

import hashlib
import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

COMMIT = "0" * 40
LIFETIME = 300  # seconds after which the server stops by itself
TOKENIZER = ["vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json"]


class Hub:
    """Repositories (repo id -> file name -> bytes) at `url` while the context is open."""

    def __init__(self, repos: dict[str, dict[str, bytes]]):
        self.repos, self.requests = repos, []

    def __enter__(self) -> "Hub":
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        self._deadline = threading.Timer(LIFETIME, self._server.shutdown)
        self._deadline.daemon = True
        self._deadline.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self

    def __exit__(self, *exc) -> None:
        self._deadline.cancel()
        self._server.shutdown()
        self._server.server_close()

    def answer(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body for a GET of `path` (a HEAD sends the same without the body)."""
        if "/resolve/" in path:  # /<repo>/resolve/<revision>/<file>
            repo, rest = path.lstrip("/").split("/resolve/", 1)
            files, name = self.repos.get(repo), rest.split("/", 1)[1]
            if files is None or name not in files:
                error = "RepositoryNotFound" if files is None else "EntryNotFound"
                return 404, {"X-Error-Code": error}, b""
            etag = f'"{hashlib.sha256(files[name]).hexdigest()}"'
            return 200, {"X-Repo-Commit": COMMIT, "ETag": etag}, files[name]
        if path.startswith("/api/models/"):  # a repository's info, or a folder's listing (none here)
            if "/tree/" in path:
                return 200, {"Content-Type": "application/json"}, b"[]"
            repo = path.removeprefix("/api/models/").split("/revision/")[0]
            if repo not in self.repos:
                return 404, {"X-Error-Code": "RepositoryNotFound"}, b""
            info = {"id": repo, "sha": COMMIT, "siblings": [{"rfilename": name} for name in self.repos[repo]]}
            return 200, {"Content-Type": "application/json"}, json.dumps(info).encode()
        return 404, {}, b""

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, with_body: bool) -> None:
                path = unquote(urlsplit(self.path).path)
                hub.requests.append((self.command, path))
                status, headers, body = hub.answer(path)
                self.send_response(status)
                for key, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(key, value)
                self.end_headers()
                if with_body:
                    self.wfile.write(body)

            def do_HEAD(self) -> None:
                self._reply(False)

            def do_GET(self) -> None:
                self._reply(True)

            def log_message(self, *args) -> None:
                """Keep the test output clean."""

        return Handler


def tiny_models(folder: Path, minilm: Path) -> dict[str, dict[str, bytes]]:
    """A timm backbone's weights (timm's own tiny test_resnet) and a tiny BERT with MiniLM's tokenizer, as hub repos
    (the BERT is written in `folder` first)."""
    import timm
    from safetensors.torch import save
    from transformers import BertConfig, BertModel

    backbone = timm.create_model("test_resnet")
    weights = save({key: value.contiguous() for key, value in backbone.state_dict().items()})
    config = {"architecture": "test_resnet", "num_classes": backbone.num_classes}
    bert = folder / "tiny-bert"
    BertModel(
        BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    ).save_pretrained(bert)
    for name in TOKENIZER:
        shutil.copy(minilm / name, bert / name)
    return {
        "timm/test_resnet.r160_in1k": {"model.safetensors": weights, "config.json": json.dumps(config).encode()},
        "someone/tiny-bert-multilingual": {path.name: path.read_bytes() for path in bert.iterdir()},
    }
