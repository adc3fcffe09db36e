"""``pytest-energy comment`` against a fake GitHub REST API on 127.0.0.1.

The fake speaks real HTTP (``http.server`` in a thread), so the poster's requests,
headers, Link pagination, redirects and retries are exercised end to end. Retries
wait through an injected ``sleep`` that only records, and rate-limit resets are
computed from an injected clock: no test reads or waits on the wall clock.
"""

from __future__ import annotations

import argparse
import json
import threading
import traceback
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pytest_energy.cli import comment as github

TOKEN = "ghs_fakeTokenValue0123456789abcdef"
BOT = "github-actions[bot]"
REPO = "octo/energy"
HEAD = "a" * 40
OTHER_HEAD = "b" * 40
NOW = 1_700_000_000.0


@dataclass
class Scripted:
    """A canned answer served instead of the normal one, in order."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    method: str | None = None  # None: the next request, whatever its method
    #: Bytes sent as they are instead of an HTTP answer: a garbled status line, an
    #: answer cut short. The connection is closed after them.
    raw: bytes | None = None


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


class FakeGitHub:
    """The few REST endpoints the poster uses, with GitHub's pagination."""

    def __init__(self) -> None:
        self.pulls: list[dict[str, Any]] = []
        self.comments: dict[int, list[dict[str, Any]]] = {}
        self.script: list[Scripted] = []
        self.seen: list[Seen] = []
        self.extra_link: str | None = None
        self.redirect_to: str | None = None
        self.base = ""
        self._next_id = 9000
        self._lock = threading.Lock()

    # -- fixtures of state --

    def add_pull(self, number: int, sha: str, head_repo: str = REPO, state: str = "open") -> None:
        self.pulls.append(
            {
                "number": number,
                "state": state,
                "head": {"sha": sha, "repo": {"full_name": head_repo}},
            }
        )

    def add_comment(self, number: int, body: str, login: str = BOT) -> dict[str, Any]:
        self._next_id += 1
        comment = {
            "id": self._next_id,
            "body": body,
            "user": {"login": login},
            "html_url": f"https://github.test/{REPO}/pull/{number}#c{self._next_id}",
        }
        self.comments.setdefault(number, []).append(comment)
        return comment

    def requests(self, method: str) -> list[Seen]:
        return [seen for seen in self.seen if seen.method == method]

    # -- HTTP --

    def answer(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], Any]:
        parts = urllib.parse.urlsplit(raw_path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        with self._lock:
            self.seen.append(Seen(method, parts.path, query, headers))
            for index, canned in enumerate(self.script):
                if canned.method in {None, method}:
                    del self.script[index]
                    if canned.raw is not None:
                        return canned.status, canned.headers, canned.raw
                    return canned.status, canned.headers, canned.body
        if self.redirect_to is not None:
            return 302, {"Location": self.redirect_to}, None
        if headers.get("authorization") != f"Bearer {TOKEN}":
            return 401, {}, {"message": "Bad credentials"}
        segments = parts.path.strip("/").split("/")
        if segments[:3] != ["repos", *REPO.split("/")]:
            return 404, {}, {"message": "Not Found"}
        rest = segments[3:]
        payload = json.loads(body) if body else {}
        if method == "GET" and rest == ["pulls"]:
            open_pulls = [p for p in self.pulls if p["state"] == query.get("state", "open")]
            return self.page(parts.path, query, open_pulls)
        if method == "GET" and rest[:1] == ["issues"] and rest[2:] == ["comments"]:
            return self.page(parts.path, query, self.comments.get(int(rest[1]), []))
        if method == "POST" and rest[:1] == ["issues"] and rest[2:] == ["comments"]:
            return 201, {}, self.add_comment(int(rest[1]), payload["body"])
        if method == "PATCH" and rest[:2] == ["issues", "comments"]:
            for comments in self.comments.values():
                for comment in comments:
                    if comment["id"] == int(rest[2]):
                        comment["body"] = payload["body"]
                        return 200, {}, comment
        return 404, {}, {"message": "Not Found"}

    def page(
        self, path: str, query: dict[str, str], items: list[dict[str, Any]]
    ) -> tuple[int, dict[str, str], Any]:
        per_page = int(query.get("per_page", "30"))
        page = int(query.get("page", "1"))
        chunk = items[(page - 1) * per_page : page * per_page]
        links = []
        if page * per_page < len(items):
            following = {**query, "page": str(page + 1)}
            links.append(f'<{self.base}{path}?{urllib.parse.urlencode(following)}>; rel="next"')
            last = {**query, "page": str(-(-len(items) // per_page))}
            links.append(f'<{self.base}{path}?{urllib.parse.urlencode(last)}>; rel="last"')
        if self.extra_link is not None:
            links = [f'<{self.extra_link}>; rel="next"']
        return 200, {"Link": ", ".join(links)} if links else {}, chunk


def github_handler(fake: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {key.lower(): value for key, value in self.headers.items()}
            status, extra, data = fake.answer(self.command, self.path, headers, body)
            if isinstance(data, bytes):
                self.wfile.write(data)
                self.close_connection = True
                return
            raw = b"" if data is None else json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:
            """Keep the server quiet: tests inspect the client's output only."""

    return Handler


@pytest.fixture
def serve() -> Iterator[Callable[[FakeGitHub], str]]:
    servers: list[ThreadingHTTPServer] = []

    def start(fake: FakeGitHub) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), github_handler(fake))
        servers.append(server)
        # A short poll interval only makes shutdown() prompt at teardown.
        threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
        fake.base = f"http://127.0.0.1:{server.server_address[1]}"
        return fake.base

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def fake(serve: Callable[[FakeGitHub], str], monkeypatch: pytest.MonkeyPatch) -> FakeGitHub:
    # A proxy configured on the machine must not intercept the local fake.
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    server = FakeGitHub()
    serve(server)
    return server


@pytest.fixture
def body_file(tmp_path: Path) -> Path:
    path = tmp_path / "comment.md"
    path.write_text("## Energy\n\nNo regressions.\n", encoding="utf-8")
    return path


class Sleeps(list[float]):
    """An injected ``sleep`` that records instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pytest-energy comment")
    github.add_comment_arguments(parser)
    return parser.parse_args(list(argv))


def comment(
    fake: FakeGitHub,
    body_file: Path,
    *extra: str,
    sleeps: Sleeps | None = None,
    env: dict[str, str] | None = None,
) -> int:
    args = parse(
        "--body-file",
        str(body_file),
        "--repo",
        REPO,
        "--head-sha",
        HEAD,
        "--api-url",
        fake.base,
        *extra,
    )
    return github.comment_command(
        args,
        sleep=Sleeps() if sleeps is None else sleeps,
        clock=lambda: NOW,
        environ={"GITHUB_TOKEN": TOKEN} if env is None else env,
    )


def write_hint(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "pr.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# --- create and update --------------------------------------------------------------


def test_creates_the_comment_through_run_comment(
    fake: FakeGitHub,
    body_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake.add_pull(7, HEAD)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.delenv("GH_TOKEN", raising=False)
    args = parse("--body-file", str(body_file), "--repo", REPO, "--head-sha", HEAD)
    args.api_url = fake.base

    assert github.run_comment(args) == 0

    [posted] = fake.comments[7]
    assert posted["body"].startswith(github.DEFAULT_MARKER + "\n## Energy")
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert "created the energy comment on #7" in out
    [post] = fake.requests("POST")
    assert post.headers["accept"] == "application/vnd.github+json"


def test_updates_its_own_comment_in_place(
    fake: FakeGitHub, body_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.add_pull(7, HEAD)
    fake.add_comment(7, "LGTM")
    quoted = fake.add_comment(7, f"> {github.DEFAULT_MARKER} why this?", login="alice")
    mine = fake.add_comment(7, f"{github.DEFAULT_MARKER}\nold numbers")

    assert comment(fake, body_file) == 0

    assert len(fake.comments[7]) == 3
    assert mine["body"] == f"{github.DEFAULT_MARKER}\n## Energy\n\nNo regressions.\n"
    assert quoted["body"].endswith("why this?")
    assert fake.requests("POST") == []
    [patch] = fake.requests("PATCH")
    assert patch.path.endswith(f"/issues/comments/{mine['id']}")
    assert "updated the energy comment on #7 in place" in capsys.readouterr().out


def test_an_unchanged_comment_is_not_rewritten(
    fake: FakeGitHub, body_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.add_pull(7, HEAD)
    fake.add_comment(7, github.cap_body(body_file.read_text(encoding="utf-8")))

    assert comment(fake, body_file) == 0

    assert fake.requests("PATCH") == []
    assert fake.requests("POST") == []
    assert "up to date" in capsys.readouterr().out


def test_marker_found_on_page_three(fake: FakeGitHub, body_file: Path) -> None:
    fake.add_pull(7, HEAD)
    for index in range(250):
        fake.add_comment(7, f"chatter {index}", login="bob" if index % 2 else BOT)
    sticky = fake.comments[7][230]
    sticky["body"] = f"{github.DEFAULT_MARKER}\nstale"

    assert comment(fake, body_file) == 0

    pages = [s.query.get("page", "1") for s in fake.requests("GET") if "comments" in s.path]
    assert pages == ["1", "2", "3"]
    assert all(s.query["per_page"] == "100" for s in fake.requests("GET"))
    assert fake.requests("POST") == []
    assert sticky["body"].endswith("No regressions.\n")
    assert len(fake.comments[7]) == 250


def test_a_custom_marker_keeps_two_sticky_comments_apart(fake: FakeGitHub, body_file: Path) -> None:
    fake.add_pull(7, HEAD)
    cpu = fake.add_comment(7, f"{github.DEFAULT_MARKER}\ncpu job")

    assert comment(fake, body_file, "--marker", "pytest-energy:gpu") == 0

    assert cpu["body"] == f"{github.DEFAULT_MARKER}\ncpu job"
    [gpu] = [c for c in fake.comments[7] if c is not cpu]
    assert gpu["body"].startswith("<!-- pytest-energy:gpu -->\n")


# --- which pull request ---------------------------------------------------------------


def test_fork_pr_is_found_by_head_sha_across_pages(
    fake: FakeGitHub, body_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for number in range(1, 151):
        fake.add_pull(number, OTHER_HEAD)
    fake.add_pull(151, HEAD, head_repo="contributor/energy-fork")
    fake.add_pull(152, HEAD, state="closed")

    assert comment(fake, body_file, "--head-repo", "contributor/energy-fork") == 0

    assert list(fake.comments) == [151]
    pulls = [s for s in fake.requests("GET") if s.path.endswith("/pulls")]
    assert [s.query.get("page", "1") for s in pulls] == ["1", "2"]
    assert pulls[0].query["state"] == "open"
    assert "#151" in capsys.readouterr().out


def test_head_repo_filter_ignores_a_same_sha_pr_from_elsewhere(
    fake: FakeGitHub, body_file: Path
) -> None:
    fake.add_pull(3, HEAD, head_repo="mallory/copy")
    fake.add_pull(4, HEAD, head_repo="contributor/energy-fork")

    assert comment(fake, body_file, "--head-repo", "contributor/energy-fork") == 0

    assert list(fake.comments) == [4]


def test_no_open_pr_for_the_sha_is_nothing_to_do(
    fake: FakeGitHub, body_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.add_pull(1, OTHER_HEAD)

    assert comment(fake, body_file) == 0

    captured = capsys.readouterr()
    assert (
        captured.out == f"pytest-energy comment: no open PR for head {HEAD[:12]}: nothing to do\n"
    )
    assert captured.err == ""
    assert fake.requests("POST") == fake.requests("PATCH") == []


def test_pr_hint_that_disagrees_with_github_loses(
    fake: FakeGitHub, body_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.add_pull(5, HEAD)
    fake.add_pull(99, OTHER_HEAD)
    hint = write_hint(tmp_path, {"pr": 99, "head_sha": HEAD})

    assert comment(fake, body_file, "--pr-hint", str(hint)) == 0

    assert list(fake.comments) == [5]
    out = capsys.readouterr().out
    assert "pr.json names #99, GitHub says head aaaaaaaaaaaa is #5: trusting GitHub" in out


def test_pr_hint_for_another_commit_is_ignored(
    fake: FakeGitHub, body_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.add_pull(5, HEAD)
    fake.add_pull(6, OTHER_HEAD)
    hint = write_hint(tmp_path, {"pr": 6, "head_sha": OTHER_HEAD})

    assert comment(fake, body_file, "--pr-hint", str(hint)) == 0

    assert list(fake.comments) == [5]
    assert "ignoring it" in capsys.readouterr().out


def test_pr_hint_breaks_a_tie_github_agrees_with(
    fake: FakeGitHub, body_file: Path, tmp_path: Path
) -> None:
    fake.add_pull(5, HEAD)
    fake.add_pull(8, HEAD)

    assert comment(fake, body_file) == 0
    assert fake.comments == {}

    assert comment(fake, body_file, "--pr-hint", str(write_hint(tmp_path, {"pr": 8}))) == 0
    assert list(fake.comments) == [8]


@pytest.mark.parametrize(
    "content",
    ['{"pr": "5; rm -rf /"}', "not json", '{"pr": true}', " " * (github.MAX_HINT_BYTES + 1)],
)
def test_a_malformed_hint_is_reported_and_ignored(
    fake: FakeGitHub,
    body_file: Path,
    tmp_path: Path,
    content: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake.add_pull(5, HEAD)
    hint = tmp_path / "pr.json"
    hint.write_text(content, encoding="utf-8")

    assert comment(fake, body_file, "--pr-hint", str(hint)) == 0

    assert list(fake.comments) == [5]
    assert "ignoring the pr.json hint" in capsys.readouterr().out


# --- retries and rate limits -------------------------------------------------------


def test_server_errors_are_retried_with_backoff(fake: FakeGitHub, body_file: Path) -> None:
    fake.add_pull(7, HEAD)
    fake.script = [Scripted(502), Scripted(503, body={"message": "unavailable"})]
    sleeps = Sleeps()

    assert comment(fake, body_file, sleeps=sleeps) == 0

    assert sleeps == [1.0, 2.0]
    assert list(fake.comments) == [7]


def test_rate_limit_403_waits_until_the_reset(fake: FakeGitHub, body_file: Path) -> None:
    fake.add_pull(7, HEAD)
    exhausted = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 30)}
    fake.script = [Scripted(403, exhausted, {"message": "API rate limit exceeded"})]
    sleeps = Sleeps()

    assert comment(fake, body_file, sleeps=sleeps) == 0

    assert sleeps == [31.0]
    assert list(fake.comments) == [7]


def test_secondary_rate_limit_honours_retry_after(fake: FakeGitHub, body_file: Path) -> None:
    fake.add_pull(7, HEAD)
    fake.script = [Scripted(429, {"Retry-After": "7"}), Scripted(403, {"Retry-After": "3"})]
    sleeps = Sleeps()

    assert comment(fake, body_file, sleeps=sleeps) == 0

    assert sleeps == [7.0, 3.0]


def test_a_distant_rate_limit_reset_is_reported_not_waited(
    fake: FakeGitHub, body_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exhausted = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 3600)}
    fake.script = [Scripted(403, exhausted, {"message": "API rate limit exceeded"})]
    sleeps = Sleeps()

    assert comment(fake, body_file, sleeps=sleeps) == 1

    assert sleeps == []
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "HTTP 403: API rate limit exceeded (rate limit exhausted; retry later)" in err


def test_gives_up_after_four_attempts(
    fake: FakeGitHub, body_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.script = [Scripted(500)] * 4
    sleeps = Sleeps()

    assert comment(fake, body_file, sleeps=sleeps) == 1

    assert sleeps == [1.0, 2.0, 4.0]
    assert len(fake.seen) == 4
    err = capsys.readouterr().err
    assert err == f"pytest-energy comment: error: GET /repos/{REPO}/pulls failed: HTTP 500\n"


def test_a_permission_error_is_not_retried(
    fake: FakeGitHub, body_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.add_pull(7, HEAD)
    denied = {"message": "Resource not accessible by integration"}
    fake.script = [Scripted(403, body=denied, method="POST")]
    sleeps = Sleeps()

    assert comment(fake, body_file, sleeps=sleeps) == 1

    assert sleeps == []
    err = capsys.readouterr().err
    assert "Resource not accessible by integration" in err
    assert "pull-requests: write" in err


def test_connection_failures_are_retried_then_reported(
    body_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    closed = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = closed.server_address[1]
    closed.server_close()  # nothing listens there any more: connection refused
    unreachable = FakeGitHub()
    unreachable.base = f"http://127.0.0.1:{port}"
    sleeps = Sleeps()

    assert comment(unreachable, body_file, sleeps=sleeps) == 1

    assert sleeps == [1.0, 2.0, 4.0]
    assert capsys.readouterr().err.startswith("pytest-energy comment: error: GET /repos/")


# --- body size ----------------------------------------------------------------------


def test_an_oversized_body_is_truncated_with_a_note_and_keeps_the_marker(
    fake: FakeGitHub, tmp_path: Path
) -> None:
    fake.add_pull(7, HEAD)
    rows = "".join(f"| `test_{i}` | 1.0 J | +0.1% |\n" for i in range(5000))
    body = tmp_path / "big.md"
    body.write_text(f"## Energy\n\n<details>\n\n| test | energy | change |\n{rows}", "utf-8")

    assert comment(fake, body) == 0

    [posted] = fake.comments[7]
    text = posted["body"]
    assert len(text) + text.count("\n") <= github.MAX_BODY_CHARS
    assert text.startswith(github.DEFAULT_MARKER + "\n## Energy")
    assert text.count("<details>") == text.count("</details>") == 1
    assert "truncated to fit GitHub's limit of 65,536 characters" in text
    assert "| `test_0` |" in text
    assert "| `test_4999` |" not in text


def test_cap_body_keeps_a_trailing_marker_and_survives_one_huge_line() -> None:
    marker = "<!-- pytest-energy:gpu -->"
    capped = github.cap_body("x" * 200_000 + "\n" + marker, marker)
    assert capped.startswith(marker)
    assert len(capped) <= github.MAX_BODY_CHARS
    assert "truncated" in capped


def test_cap_body_leaves_a_small_body_alone() -> None:
    body = f"{github.DEFAULT_MARKER}\nsmall\n"
    assert github.cap_body(body) == body


# --- the token ------------------------------------------------------------------------


def test_token_never_appears_in_output_or_exceptions(
    fake: FakeGitHub, body_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.add_pull(7, HEAD)
    # A hostile or confused server echoes the credentials back in its error.
    fake.script = [Scripted(401, body={"message": f"Bad credentials: Bearer {TOKEN}"})]
    assert comment(fake, body_file) == 1
    fake.script = [Scripted(422, body={"message": f"token {TOKEN} cannot do that"})]
    assert comment(fake, body_file) == 1
    assert comment(fake, body_file, "--repo", f"{TOKEN}/x/y") == 2  # usage error echoes input
    assert comment(fake, body_file) == 0
    assert comment(fake, body_file, env={"GH_TOKEN": TOKEN}) == 0

    client = github.RestClient(fake.base, TOKEN, sleep=Sleeps(), clock=lambda: NOW)
    fake.script = [Scripted(500, body={"message": TOKEN})] * 4
    with pytest.raises(github.GitHubError) as caught:
        client.request("GET", f"/repos/{REPO}/pulls")

    captured = capsys.readouterr()
    assert "***" in captured.err
    for text in (
        captured.out,
        captured.err,
        str(caught.value),
        repr(caught.value),
        "".join(traceback.format_exception(caught.value)),
    ):
        assert TOKEN not in text
    assert all(s.headers.get("authorization") == f"Bearer {TOKEN}" for s in fake.seen)


def test_a_missing_token_is_a_usage_error(
    fake: FakeGitHub, body_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert comment(fake, body_file, env={}) == 2
    assert "set GITHUB_TOKEN" in capsys.readouterr().err
    assert fake.seen == []


def test_the_token_is_not_sent_to_another_host(
    fake: FakeGitHub,
    serve: Callable[[FakeGitHub], str],
    body_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    elsewhere = FakeGitHub()
    # 127.0.0.2 would be the same machine under another name; a second port on
    # 127.0.0.1 is already another origin, which is what the client compares.
    other = serve(elsewhere)
    fake.add_pull(7, HEAD)

    fake.redirect_to = f"{other}/repos/{REPO}/pulls"
    assert comment(fake, body_file) == 1
    assert "HTTP 302" in capsys.readouterr().err

    fake.redirect_to = None
    fake.extra_link = f"{other}/repos/{REPO}/pulls?page=2"
    assert comment(fake, body_file) == 1
    assert "another host" in capsys.readouterr().err

    assert elsewhere.seen == []


# --- usage ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--head-sha", "abc123"), "--head-sha 'abc123': expected a full commit SHA"),
        (("--repo", "no-slash"), "--repo 'no-slash': expected OWNER/NAME"),
        (("--head-repo", "a/b/c"), "--head-repo 'a/b/c': expected OWNER/NAME"),
        (("--marker", "a --> b"), "--marker 'a --> b': expected a short label"),
        (("--api-url", "ftp://example.org"), "--api-url 'ftp://example.org': expected an http"),
        (("--body-file", "/nonexistent/comment.md"), "--body-file /nonexistent/comment.md: "),
    ],
)
def test_bad_arguments_are_one_line_usage_errors(
    fake: FakeGitHub,
    body_file: Path,
    extra: tuple[str, str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert comment(fake, body_file, *extra) == 2

    err = capsys.readouterr().err
    assert err.startswith(f"pytest-energy comment: error: {message}")
    assert err.count("\n") == 1
    assert fake.seen == []


def test_required_arguments_are_enforced_by_argparse(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        parse("--repo", REPO)
    assert caught.value.code == 2
    assert "--body-file" in capsys.readouterr().err


# --- one line for every HTTP or parse failure ------------------------------------------

#: A status line http.client cannot parse, and an answer shorter than it announced.
BAD_STATUS_LINE = b"HTTP/1.1 two hundred OK\r\n\r\n"
CUT_SHORT = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n[{"


def one_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_the_token_is_redacted_before_a_long_message_is_cut(
    fake: FakeGitHub, body_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.add_pull(7, HEAD)
    # The cut at 200 characters falls inside the token: cutting first would have
    # printed most of it, and the whole-token replacement would then miss it.
    fake.script = [Scripted(422, body={"message": "x" * 190 + TOKEN + "y" * 40})]
    assert comment(fake, body_file) == 1
    err = one_line(capsys.readouterr().err)
    assert "x" * 190 + "***" in err
    for start in range(len(TOKEN) - 6):
        assert TOKEN[start : start + 6] not in err


@pytest.mark.parametrize(
    ("raw", "reason"),
    [(BAD_STATUS_LINE, "malformed status line"), (CUT_SHORT, "cut short")],
    ids=["bad-status-line", "incomplete-read"],
)
def test_a_garbled_answer_is_retried(
    fake: FakeGitHub, body_file: Path, raw: bytes, reason: str
) -> None:
    fake.add_pull(7, HEAD)
    fake.script = [Scripted(0, raw=raw, method="GET")]
    sleeps = Sleeps()
    assert comment(fake, body_file, sleeps=sleeps) == 0
    assert sleeps == [1.0]
    assert len(fake.comments[7]) == 1


@pytest.mark.parametrize(
    ("raw", "reason"),
    [(BAD_STATUS_LINE, "malformed status line"), (CUT_SHORT, "cut short")],
    ids=["bad-status-line", "incomplete-read"],
)
def test_a_garbled_answer_that_persists_is_one_line(
    fake: FakeGitHub,
    body_file: Path,
    raw: bytes,
    reason: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake.add_pull(7, HEAD)
    fake.script = [Scripted(0, raw=raw)] * 4
    assert comment(fake, body_file) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith("pytest-energy comment: error: GET /repos/octo/energy/pulls failed:")
    assert reason in line
    assert len(fake.seen) == 4


@pytest.mark.parametrize(
    "link",
    ["{base}/repos/octo/energy/pulls?page=2 &per_page=100", "http://[::1/repos/octo/energy/pulls"],
    ids=["space-in-url", "bad-ipv6-host"],
)
def test_a_malformed_link_header_is_one_line(
    fake: FakeGitHub, body_file: Path, link: str, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.add_pull(7, HEAD)
    fake.extra_link = link.format(base=fake.base)
    assert comment(fake, body_file) == 1
    line = one_line(capsys.readouterr().err)
    assert "refusing" in line
    assert TOKEN not in line
    assert len(fake.seen) == 1


def test_padding_inside_link_brackets_is_tolerated(fake: FakeGitHub, body_file: Path) -> None:
    fake.add_pull(7, OTHER_HEAD)
    fake.add_pull(8, HEAD)
    pages = iter([f" {fake.base}/repos/{REPO}/pulls?state=open&per_page=1&page=2 ", None])

    original = fake.page

    def padded(path: str, query: dict[str, str], items: list[dict[str, Any]]) -> Any:
        if not path.endswith("/pulls"):
            return original(path, query, items)
        status, _headers, chunk = original(path, {**query, "per_page": "1"}, items)
        following = next(pages)
        return status, ({"Link": f'<{following}>; rel="next"'} if following else {}), chunk

    fake.page = padded  # type: ignore[method-assign]
    assert comment(fake, body_file) == 0
    assert len(fake.comments[8]) == 1


# --- results folders: every file its own section ----------------------------------------


def _results_dir(tmp_path: Path, **files: str | bytes | None) -> Path:
    """An artifacts folder: name -> results.json text, bytes, or None for a symlink."""
    from records import passed_record, sample_record, ungated_record

    root = tmp_path / "artifacts"
    for name, content in files.items():
        folder = root / name
        folder.mkdir(parents=True)
        target = folder / "results.json"
        if content is None:
            (tmp_path / "elsewhere.json").write_text(passed_record().to_json(), encoding="utf-8")
            target.symlink_to(tmp_path / "elsewhere.json")
        elif content == "passed":
            target.write_text(passed_record().to_json(), encoding="utf-8")
        elif content == "quiet":  # no regression, nothing inconclusive: no alert
            target.write_text(ungated_record().to_json(), encoding="utf-8")
        elif content == "regressed":
            target.write_text(sample_record().to_json(), encoding="utf-8")
        elif isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    root.mkdir(exist_ok=True)
    return root


def results_comment(fake: FakeGitHub, directory: Path, *extra: str) -> int:
    args = parse(
        "--results-dir", str(directory), "--repo", REPO, "--head-sha", HEAD,
        "--api-url", fake.base, *extra,
    )  # fmt: skip
    return github.comment_command(
        args, sleep=Sleeps(), clock=lambda: NOW, environ={"GITHUB_TOKEN": TOKEN}
    )


def test_one_bad_results_file_does_not_hide_the_others(
    fake: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.add_pull(7, HEAD)
    directory = _results_dir(
        tmp_path,
        **{"a-good": "passed", "b-garbage": "{not json", "c-link": None, "d-binary": b"\xff\xfe"},
    )
    huge = directory / "e-huge" / "results.json"
    huge.parent.mkdir()
    with huge.open("wb") as handle:  # sparse: 21 MB on paper, nothing on disk
        handle.truncate(21 * 1024 * 1024)
    assert results_comment(fake, directory) == 0

    out = capsys.readouterr().out
    [posted] = fake.comments[7]
    body = posted["body"]
    assert body.startswith(github.DEFAULT_MARKER)
    assert body.count(github.DEFAULT_MARKER) == 1
    assert "Energy check passed" in body
    for name in ("b-garbage", "c-link", "d-binary", "e-huge"):
        assert f"results of artifact {name} could not be shown" in body
    assert "over the 20 MiB limit" in body
    assert "not a regular file" in body
    assert out.count("skipped results: ") == 4
    assert "Traceback" not in out


def test_a_pr_hint_is_found_beside_the_results(
    fake: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.add_pull(7, HEAD)
    fake.add_pull(9, HEAD)  # a tie only pr.json can break
    directory = _results_dir(tmp_path, job="passed")
    (directory / "job" / "pr.json").write_text(json.dumps({"pr": 9, "head_sha": HEAD}))
    assert results_comment(fake, directory) == 0
    assert 9 in fake.comments
    assert 7 not in fake.comments


def test_no_results_replace_a_stale_comment(
    fake: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.add_pull(7, HEAD)
    stale = fake.add_comment(7, f"{github.DEFAULT_MARKER}\n### ✅ Energy check passed")
    assert results_comment(fake, _results_dir(tmp_path)) == 0
    assert "No energy results" in stale["body"]
    assert github.DEFAULT_MARKER in stale["body"]
    assert "updated the energy comment" in capsys.readouterr().out


def test_no_results_and_no_comment_posts_nothing(
    fake: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.add_pull(7, HEAD)
    # download-artifact leaves no folder at all when the run uploaded nothing.
    assert results_comment(fake, tmp_path / "never-downloaded") == 0
    assert fake.requests("POST") == []
    assert fake.requests("PATCH") == []
    assert "nothing to post" in capsys.readouterr().out


@pytest.mark.parametrize("text", ["", "\n  \n"], ids=["empty", "blank"])
def test_an_empty_body_is_never_posted(
    fake: FakeGitHub, tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.add_pull(7, HEAD)
    empty = tmp_path / "empty.md"
    empty.write_text(text, encoding="utf-8")
    assert comment(fake, empty) == 0
    assert fake.requests("POST") == []
    assert "nothing to post" in capsys.readouterr().out


def test_on_alert_stays_silent_while_everything_passes(
    fake: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.add_pull(7, HEAD)
    assert results_comment(fake, _results_dir(tmp_path, job="quiet"), "--when", "on-alert") == 0
    assert fake.requests("POST") == []
    assert "--when on-alert" in capsys.readouterr().out


def test_on_alert_comments_on_an_inconclusive_result(fake: FakeGitHub, tmp_path: Path) -> None:
    fake.add_pull(7, HEAD)
    assert results_comment(fake, _results_dir(tmp_path, job="passed"), "--when", "on-alert") == 0
    [posted] = fake.comments[7]
    assert "1 inconclusive" in posted["body"]


def test_on_alert_comments_on_a_regression(fake: FakeGitHub, tmp_path: Path) -> None:
    fake.add_pull(7, HEAD)
    directory = _results_dir(tmp_path, ok="passed", gpu="regressed")
    assert results_comment(fake, directory, "--when", "on-alert") == 0
    [posted] = fake.comments[7]
    assert "Energy check failed" in posted["body"]


def test_on_alert_still_corrects_an_earlier_alert(fake: FakeGitHub, tmp_path: Path) -> None:
    fake.add_pull(7, HEAD)
    earlier = fake.add_comment(7, f"{github.DEFAULT_MARKER}\n### ❌ Energy check failed")
    assert results_comment(fake, _results_dir(tmp_path, job="quiet"), "--when", "on-alert") == 0
    assert "Energy not gated" in earlier["body"]
    assert "Energy check failed" not in earlier["body"]


def test_when_never_makes_no_request(fake: FakeGitHub, tmp_path: Path) -> None:
    fake.add_pull(7, HEAD)
    assert results_comment(fake, _results_dir(tmp_path, job="regressed"), "--when", "never") == 0
    assert fake.seen == []


def test_on_alert_needs_the_results_not_a_body_file(
    fake: FakeGitHub, body_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert comment(fake, body_file, "--when", "on-alert") == 2
    assert "--when on-alert needs --results-dir" in one_line(capsys.readouterr().err)
    assert fake.seen == []
