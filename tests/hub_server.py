"""A real HTTP server on 127.0.0.1 that serves fixture repos in the Hugging Face hub's URL layout, for
huggingface_hub's real client (HF_ENDPOINT points at it):
  GET  /api/models/{org}/{name}[/revision/{rev}]      model info (sha, siblings)
  HEAD/GET /{org}/{name}/resolve/{rev}/{file}          files, with Range requests (safetensors headers)
Errors as the hub sends them: X-Error-Code RepoNotFound / EntryNotFound (404), GatedRepo (401 without
the token). Every request is logged so tests can check no weights were downloaded."""
from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Repo:
    files: dict[str, bytes]
    sha: str = "0123456789abcdef0123456789abcdef01234567"
    token: str | None = None  # gated: this bearer token is required
    delay_s: float = 0.0  # answer this late (timeouts)
    branches: dict[str, Repo] = field(default_factory=dict)  # other revisions by name (their own sha and files)

    def at(self, rev: str | None) -> Repo | None:
        """The repo as of a revision: main (by name or sha), a branch by name or sha, else None."""
        if rev in (None, "main", self.sha):
            return self
        for name, branch in self.branches.items():
            if rev in (name, branch.sha):
                return branch
        return None


@dataclass
class Hub:
    repos: dict[str, Repo] = field(default_factory=dict)
    log: list[tuple[str, str, str | None]] = field(default_factory=list)  # (method, path, range)
    url: str = ""

    def bytes_served(self, path_part: str) -> int:
        return sum(n for m, p, n in self.served if path_part in p)

    served: list[tuple[str, str, int]] = field(default_factory=list)


API = re.compile(r"^/api/models/([^/]+/[^/]+?)(?:/revision/([^/?]+))?(?:\?.*)?$")
RESOLVE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+?)(?:\?.*)?$")


def make_handler(hub: Hub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def _error(self, status: int, code: str, message: str = "") -> None:
            body = json.dumps({"error": message or code}).encode()
            self.send_response(status)
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message or code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _repo(self, repo_id: str) -> Repo | None:
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._error(404, "RepoNotFound", "Repository not found")
                return None
            if repo.delay_s:
                time.sleep(repo.delay_s)
            if repo.token and self.headers.get("Authorization") != f"Bearer {repo.token}":
                self._error(401, "GatedRepo", "Access to model is restricted. You must have access to it and be authenticated.")
                return None
            return repo

        def do_HEAD(self):
            self.do_GET()

        def do_GET(self):
            hub.log.append((self.command, self.path, self.headers.get("Range")))
            m = API.match(self.path)
            if m:
                repo = self._repo(m.group(1))
                if repo is None:
                    return
                if m.group(2) and repo.branches:  # a repo with branches knows its revisions
                    repo = repo.at(m.group(2))
                    if repo is None:
                        self._error(404, "RevisionNotFound", "Invalid rev id")
                        return
                body = json.dumps({"_id": "x", "id": m.group(1), "modelId": m.group(1), "sha": repo.sha, "private": False,
                                   "gated": "manual" if repo.token else False, "disabled": False, "tags": [],
                                   "siblings": [{"rfilename": f} for f in sorted(repo.files)]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
                return
            m = RESOLVE.match(self.path)
            if not m:
                self._error(404, "RepoNotFound")
                return
            repo = self._repo(m.group(1))
            if repo is None:
                return
            repo = repo.at(m.group(2))
            if repo is None:
                self._error(404, "RevisionNotFound", "Invalid rev id")
                return
            data = repo.files.get(m.group(3))
            if data is None:
                self._error(404, "EntryNotFound", "Entry not found")
                return
            status, start, end = 200, 0, len(data) - 1
            rng = self.headers.get("Range")
            if rng:
                a, _, b = rng.removeprefix("bytes=").partition("-")
                start, end = int(a), min(int(b) if b else len(data) - 1, len(data) - 1)
                status = 206
            chunk = data[start:end + 1]
            self.send_response(status)
            self.send_header("X-Repo-Commit", repo.sha)
            self.send_header("ETag", '"' + hashlib.sha256(data).hexdigest() + '"')
            self.send_header("Content-Length", str(len(chunk)))
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(chunk)
                hub.served.append((self.command, self.path, len(chunk)))

    return Handler


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # a client that hung up (timeout tests): not the test's output
        pass


def start(hub: Hub) -> ThreadingHTTPServer:
    server = _Server(("127.0.0.1", 0), make_handler(hub))
    server.daemon_threads = True
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def point_hub_client_at(hub: Hub, tmp_path, monkeypatch) -> None:
    """huggingface_hub (and oomplan's header cache) pointed at this server and at fresh folders under tmp_path."""
    for key in ("HF_TOKEN", "HF_HUB_OFFLINE", "HF_HUB_CACHE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("OOMPLAN_CACHE_DIR", str(tmp_path / "oomplan-cache"))
    monkeypatch.setenv("OOMPLAN_HUB_TIMEOUT", "1")
