"""A small Hugging Face Hub stand-in on 127.0.0.1 for the publishing tests: the endpoints huggingface_hub 2.4
calls to create a repository, branch and commit (regular uploads only: every file is answered
`uploadMode: regular`, so no LFS or xet transfer happens) and to download what was committed.

    with FakeHub() as hub:                      # a thread serving http://127.0.0.1:<free port>
        env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_fake", "HF_HUB_OFFLINE": "0"}
        ...                                     # run the publish in a subprocess with env
        hub.repos["tester/x"].private, hub.commits[-1].summary, hub.commits[-1].files["README.md"]

Every request is recorded in `hub.requests` (method, path); every commit in `hub.commits` with its repository,
revision, ref, message, whether it went to a pull request, and the files' bytes. Requests without a `Bearer hf_...` token get 401.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

USER = "tester"


@dataclass
class FakeRepo:
    repo_id: str
    private: bool
    # branch or pull-request ref -> {path: bytes}
    refs: dict[str, dict[str, bytes]] = field(default_factory=lambda: {"main": {}})
    shas: dict[str, str] = field(default_factory=lambda: {"main": "0" * 40})
    # pull request number - 1 -> title
    pull_requests: list[str] = field(default_factory=list)

    def ref(self, revision: str) -> str | None:
        """The branch or pull-request ref named by `revision`, a ref or a commit sha (None: unknown)."""
        if revision in self.refs:
            return revision
        return next((ref for ref, sha in self.shas.items() if sha == revision), None)


@dataclass
class FakeCommit:
    repo_id: str
    revision: str
    summary: str
    description: str
    pull_request: bool  # committed to a pull request's ref
    files: dict[str, bytes]
    ref: str
    oid: str


class FakeHub:
    """The fake Hub's state and its server thread (a context manager: started on enter, stopped on exit)."""

    def __init__(self) -> None:
        self.repos: dict[str, FakeRepo] = {}
        self.commits: list[FakeCommit] = []
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:  # noqa: PYI034  (Self needs Python 3.11)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    # --------------------------------------------------------------------------------------- API

    def create_repo(self, payload: dict) -> tuple[int, dict]:
        repo_id = f"{payload.get('organization') or USER}/{payload['name']}"
        if repo_id in self.repos:
            return 409, {"error": "You already created this model repo", "url": f"{self.url}/{repo_id}"}
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        self.repos[repo_id] = FakeRepo(repo_id, private)
        return 200, {"url": f"{self.url}/{repo_id}", "name": repo_id}

    def create_branch(self, repo: FakeRepo, branch: str, payload: dict) -> tuple[int, dict]:
        if branch in repo.refs:
            return 409, {"error": f"Branch {branch} already exists"}
        start = payload.get("startingPoint") or "main"
        repo.refs[branch] = dict(repo.refs[start])
        repo.shas[branch] = repo.shas[start]
        return 200, {}

    def commit(self, repo: FakeRepo, revision: str, create_pr: bool, body: bytes) -> tuple[int, dict]:
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = next(item["value"] for item in lines if item["key"] == "header")
        files = {}
        for item in lines:
            if item["key"] == "file":
                value = item["value"]
                if value.get("encoding") != "base64":
                    return 400, {"error": f"unsupported encoding {value.get('encoding')!r}"}
                files[value["path"]] = base64.b64decode(value["content"])
            elif item["key"] != "header":
                return 400, {"error": f"the fake hub takes regular files only, got {item['key']!r}"}
        if revision not in repo.refs:
            return 404, {"error": f"Invalid rev id: {revision}"}
        ref = revision
        if create_pr:  # `?create_pr=1`; huggingface_hub's pipelined upload opens the PR first instead
            ref = self.open_pull_request(repo, header["summary"])
        repo.refs[ref].update(files)
        oid = hashlib.sha1(body).hexdigest()
        repo.shas[ref] = oid
        on_pr = ref.startswith("refs/pr/")
        self.commits.append(
            FakeCommit(repo.repo_id, revision, header["summary"], header.get("description", ""), on_pr, files,
                       ref, oid)
        )  # fmt: skip
        answer = {"commitUrl": f"{self.url}/{repo.repo_id}/commit/{oid}", "commitOid": oid}
        answer["pullRequestUrl"] = (
            f"{self.url}/{repo.repo_id}/discussions/{ref.split('/')[-1]}" if on_pr else None
        )
        return 200, answer

    def tree(self, repo: FakeRepo, revision_and_path: str) -> tuple[int, dict | list, dict]:
        """`tree/<revision>[/<folder>]`: the files under the folder (a revision may hold `/`: `refs/pr/1`)."""
        parts = revision_and_path.split("/")
        for cut in range(len(parts), 0, -1):
            revision, folder = repo.ref("/".join(parts[:cut])), "/".join(parts[cut:])
            if revision is not None:
                break
        else:
            return 404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"}
        files = [
            {"type": "file", "path": path, "size": len(content), "oid": hashlib.sha1(content).hexdigest()}
            for path, content in sorted(repo.refs[revision].items())
            if not folder or path.startswith(folder + "/")
        ]
        if folder and not files:
            return 404, {"error": f"{folder} does not exist"}, {"X-Error-Code": "EntryNotFound"}
        return 200, files, {}

    def open_pull_request(self, repo: FakeRepo, title: str) -> str:
        """A pull request against main: its ref `refs/pr/<n>`, starting from main's files."""
        repo.pull_requests.append(title)
        ref = f"refs/pr/{len(repo.pull_requests)}"
        repo.refs[ref] = dict(repo.refs["main"])
        repo.shas[ref] = repo.shas["main"]
        return ref

    def pull_request(self, repo: FakeRepo, num: int) -> tuple[int, dict]:
        if not 0 < num <= len(repo.pull_requests):
            return 404, {"error": "Discussion not found"}
        return 200, {
            "num": num, "title": repo.pull_requests[num - 1], "status": "draft", "isPullRequest": True,
            "createdAt": "2026-01-01T00:00:00.000Z", "author": {"name": USER},
            "repo": {"name": repo.repo_id, "type": "model"}, "events": [], "filesWithConflicts": [],
            "changes": {"base": "refs/heads/main"},
        }  # fmt: skip

    def repo_info(self, repo: FakeRepo, revision: str) -> tuple[int, dict]:
        revision = repo.ref(revision)
        if revision is None:
            return 404, {"error": "Invalid rev id"}
        return 200, {
            "id": repo.repo_id, "modelId": repo.repo_id, "sha": repo.shas[revision], "private": repo.private,
            "siblings": [{"rfilename": path} for path in sorted(repo.refs[revision])],
        }  # fmt: skip


_REPO_ROUTE = re.compile(
    r"^/api/models/([^/]+/[^/]+)(?:/(preupload|commit|branch|revision|discussions|tree)(?:/(.+))?)?$"
)
_RESOLVE_ROUTE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep the test output clean
            pass

        def _answer(self, status: int, payload: dict | list | bytes, headers: dict | None = None) -> None:
            body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream" if isinstance(payload, bytes)
                             else "application/json")  # fmt: skip
            self.send_header("Content-Length", str(len(body)))
            if status == 404 and "X-Error-Code" not in (headers or {}):
                self.send_header(
                    "X-Error-Code", "RepoNotFound" if "rev" not in str(payload) else "RevisionNotFound"
                )
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _route(self) -> None:
            url = urlsplit(self.path)
            path, query = unquote(url.path), parse_qs(url.query)
            with hub.lock:
                hub.requests.append((self.command, path))
                if not self.headers.get("Authorization", "").startswith("Bearer hf_"):
                    return self._answer(401, {"error": "Invalid username or password."})
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, payload, headers = self._dispatch(path, query, body)
            self._answer(status, payload, headers)

        def _dispatch(self, path: str, query: dict, body: bytes) -> tuple[int, dict | list | bytes, dict]:
            if path == "/api/whoami-v2":
                return 200, {"type": "user", "name": USER, "orgs": [], "auth": {"type": "access_token"}}, {}
            if path == "/api/repos/create" and self.command == "POST":
                return (*hub.create_repo(json.loads(body)), {})
            if path == "/api/validate-yaml" and self.command == "POST":
                return (*_validate_yaml(json.loads(body)["content"]), {})
            match = _REPO_ROUTE.match(path)
            if match:
                repo = hub.repos.get(match.group(1))
                if repo is None:
                    return 404, {"error": "Repository not found"}, {}
                action, revision = match.group(2), match.group(3) or "main"
                if action == "preupload":
                    files = json.loads(body)["files"]
                    return 200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                           for f in files]}, {}  # fmt: skip
                if action == "commit":
                    return (*hub.commit(repo, revision, query.get("create_pr") == ["1"], body), {})
                if action == "discussions" and self.command == "POST":
                    ref = hub.open_pull_request(repo, json.loads(body)["title"])
                    return 200, {"num": int(ref.split("/")[-1]), "pullRequest": True}, {}
                if action == "discussions":
                    return (*hub.pull_request(repo, int(revision)), {})
                if action == "branch":
                    return (*hub.create_branch(repo, revision, json.loads(body or b"{}")), {})
                if action == "tree":
                    return hub.tree(repo, revision)
                if action in (None, "revision"):
                    return (*hub.repo_info(repo, revision), {})
                return 404, {"error": f"the fake hub has no {action} route"}, {}
            match = _RESOLVE_ROUTE.match(path)
            if match and match.group(1) in hub.repos:
                repo, file = hub.repos[match.group(1)], match.group(3)
                revision = repo.ref(match.group(2))
                content = repo.refs.get(revision, {}).get(file)
                if content is None:
                    return 404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"}
                etag = hashlib.sha1(content).hexdigest()
                return 200, content, {"ETag": f'"{etag}"', "X-Repo-Commit": repo.shas[revision]}
            return 404, {"error": f"the fake hub has no route {self.command} {path}"}, {}

        do_GET = do_POST = do_HEAD = do_PUT = _route

    return Handler


def _validate_yaml(content: str) -> tuple[int, dict]:
    """The Hub's README metadata check, as far as this fake goes: YAML front matter that parses to a mapping."""
    match = re.match(r"^---\n(.*?)\n---\n", content, re.DOTALL)
    if not match:
        return 200, {"errors": [], "warnings": [{"message": "empty or missing yaml metadata in repo card"}]}
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError as err:
        return 400, {"errors": [{"message": f"invalid YAML: {err}"}]}
    if not isinstance(data, dict):
        return 400, {"errors": [{"message": "the metadata is not a mapping"}]}
    return 200, {"errors": [], "warnings": []}
