"""``pytest-energy comment``: create or update the sticky pull-request comment.

This runs in the privileged ``workflow_run`` job (``pull-requests: write``), after
the untrusted ``pull_request`` job uploaded its results. It trusts nothing that job
produced: the pull request is the open one GitHub says has the run's head SHA, and
the artifact's ``pr.json`` is only a hint that must agree. Standard library only,
so the trusted job installs nothing: the comment action runs this code straight
from its own pinned checkout (``tests/test_action_scripts.py`` checks that the
whole import path needs nothing outside the standard library).

What is posted: the body file, or one section per ``results.json`` under
``--results-dir``. A body with nothing in it is never posted; when the run wrote no
results, an earlier comment is updated to say so (a stale "passed" must not stay).
With ``--when on-alert`` a comment is created only when something regressed, failed
or is inconclusive; an existing one is always kept current.

The token comes from ``$GITHUB_TOKEN`` (or ``$GH_TOKEN``) and never appears in
output, error messages or exception text: everything printed goes through
``Redactor``, including what a server sends back.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

from pytest_energy.cli.comment_sections import NO_RESULTS, find_hint, render_sections
from pytest_energy.cli.github_rest import GitHubError, Redactor, Response, RestClient
from pytest_energy.config.defaults import COMMENT_MARKER
from pytest_energy.frozen import frozen
from pytest_energy.record_json import parse_json
from pytest_energy.report.escape import terminal_text

__all__ = [
    "DEFAULT_AUTHOR",
    "DEFAULT_MARKER",
    "MAX_BODY_CHARS",
    "WHEN",
    "GitHubError",
    "Response",
    "RestClient",
    "add_comment_arguments",
    "cap_body",
    "comment_command",
    "run_comment",
]

DEFAULT_MARKER = COMMENT_MARKER
#: The login of the app behind ``GITHUB_TOKEN``. ``GET /user`` is not available to
#: that token, so the author is configured rather than discovered.
DEFAULT_AUTHOR = "github-actions[bot]"
DEFAULT_API_URL = "https://api.github.com"
#: GitHub rejects longer bodies with 422 "Body is too long (maximum is 65536
#: characters)" (danger/danger#424). GitHub stores line ends as CRLF, so ``_cost``
#: counts a bare "\n" as two characters to stay under the limit either way.
MAX_BODY_CHARS = 65_536
MAX_HINT_BYTES = 64 * 1024
MAX_MARKER_CHARS = 200

EXIT_OK = 0
EXIT_API_FAILURE = 1
EXIT_USAGE = 2

_SHA = re.compile(r"\A(?:[0-9a-f]{40}|[0-9a-f]{64})\Z")
_REPO = re.compile(r"\A[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+\Z")
_PROG = "pytest-energy comment"
#: When to comment: ``always``; ``on-alert`` (create only for a regression, a failure
#: or an inconclusive result; keep an existing comment current); ``never``.
WHEN = ("always", "on-alert", "never")


class UsageError(Exception):
    """A bad argument or environment; the message is one line with the fix."""


# --- arguments ------------------------------------------------------------------


def add_comment_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``comment`` subcommand's options on ``parser``."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--body-file",
        type=Path,
        metavar="PATH",
        help="markdown body to post, e.g. the output of `pytest-energy comment-body`",
    )
    source.add_argument(
        "--results-dir",
        type=Path,
        metavar="DIR",
        help="downloaded artifacts: one section per DIR/*/results.json (untrusted data); "
        "the first pr.json found is the hint unless --pr-hint is given",
    )
    parser.add_argument(
        "--when",
        choices=WHEN,
        default="always",
        help="always; on-alert: create the comment only for a regression, failure or "
        "inconclusive result (an existing comment is still updated); never "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--repo",
        required=True,
        metavar="OWNER/NAME",
        help="repository the pull request belongs to (github.repository)",
    )
    parser.add_argument(
        "--head-sha",
        required=True,
        metavar="SHA",
        help="head commit of the pull request (github.event.workflow_run.head_sha)",
    )
    parser.add_argument(
        "--head-repo",
        default=None,
        metavar="OWNER/NAME",
        help="only consider pull requests from this head repository "
        "(github.event.workflow_run.head_repository.full_name)",
    )
    parser.add_argument(
        "--pr-hint",
        type=Path,
        default=None,
        metavar="PATH",
        help="pr.json from the results artifact: untrusted, used only where GitHub agrees",
    )
    parser.add_argument(
        "--marker",
        default=DEFAULT_MARKER,
        help="hidden marker that identifies the sticky comment (default: %(default)s)",
    )
    parser.add_argument(
        "--author",
        default=DEFAULT_AUTHOR,
        metavar="LOGIN",
        help="only update comments written by this login (default: %(default)s)",
    )
    parser.add_argument(
        "--api-url",
        default=None,
        metavar="URL",
        help=f"REST API root (default: $GITHUB_API_URL or {DEFAULT_API_URL})",
    )


def run_comment(args: argparse.Namespace) -> int:
    """Entry point of ``pytest-energy comment``; returns the exit status."""
    return comment_command(args)


@frozen
class _Options:
    body: str
    #: Whether the body reports something a reviewer must see (see ``--when``).
    alert: bool
    when: str
    #: Lines for the log about results files that were skipped.
    problems: tuple[str, ...]
    repo: str
    head_sha: str
    head_repo: str | None
    hint_path: Path | None
    marker: str
    author: str
    api_url: str
    token: str

    @classmethod
    def from_args(cls, args: argparse.Namespace, environ: Mapping[str, str]) -> _Options:
        token = environ.get("GITHUB_TOKEN") or environ.get("GH_TOKEN") or ""
        if not token:
            raise UsageError(
                "no token: set GITHUB_TOKEN (the job needs `permissions: pull-requests: write`)"
            )
        repo = str(args.repo)
        if not _REPO.match(repo):
            raise UsageError(f"--repo {repo!r}: expected OWNER/NAME")
        head_repo = None if args.head_repo is None else str(args.head_repo)
        if head_repo is not None and not _REPO.match(head_repo):
            raise UsageError(f"--head-repo {head_repo!r}: expected OWNER/NAME")
        head_sha = str(args.head_sha).strip().lower()
        if not _SHA.match(head_sha):
            raise UsageError(f"--head-sha {args.head_sha!r}: expected a full commit SHA (hex)")
        api_url = args.api_url or environ.get("GITHUB_API_URL") or DEFAULT_API_URL
        parts = urllib.parse.urlsplit(api_url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise UsageError(f"--api-url {api_url!r}: expected an http(s) URL")
        when = str(getattr(args, "when", "always"))
        body, alert, problems, hint_path = _source(args, when)
        return cls(
            body=body,
            alert=alert,
            when=when,
            problems=problems,
            repo=repo,
            head_sha=head_sha,
            head_repo=head_repo,
            hint_path=hint_path,
            marker=_marker(str(args.marker)),
            author=str(args.author),
            api_url=api_url.rstrip("/"),
            token=token,
        )


def _source(args: argparse.Namespace, when: str) -> tuple[str, bool, tuple[str, ...], Path | None]:
    """The body, whether it alerts, problems to log, and the pr.json hint to use."""
    results_dir = getattr(args, "results_dir", None)
    if results_dir is None:
        if when == "on-alert":
            raise UsageError("--when on-alert needs --results-dir (a body file cannot say)")
        body_path = Path(args.body_file)
        try:
            body = body_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--body-file {body_path}: cannot read it ({exc})") from None
        return body, True, (), args.pr_hint
    directory = Path(results_dir)
    if not directory.is_dir():
        # download-artifact leaves no folder when the run uploaded nothing.
        return "", False, (f"{directory} does not exist: the run uploaded no results",), None
    sections = render_sections(directory)
    hint = args.pr_hint if args.pr_hint is not None else find_hint(directory)
    return sections.body, sections.alert, tuple(sections.problems), hint


def _marker(value: str) -> str:
    """Accept a full ``<!-- ... -->`` marker or a bare label to wrap in one."""
    value = value.strip()
    inner = value[4:-3] if value.startswith("<!--") and value.endswith("-->") else value
    inner = inner.strip()
    if not inner or "--" in inner or len(inner) > MAX_MARKER_CHARS:
        raise UsageError(
            f"--marker {value!r}: expected a short label or <!-- label --> without '--'"
        )
    return f"<!-- {inner} -->"


# --- body -------------------------------------------------------------------------


def _cost(text: str) -> int:
    """Characters GitHub counts once it has stored bare "\\n" as "\\r\\n"."""
    return len(text) + text.count("\n") - text.count("\r\n")


def _closers(text: str) -> str:
    """Close a code fence or <details> left open by truncation, so the note shows."""
    closing = ""
    fences = sum(1 for line in text.splitlines() if line.lstrip().startswith("```"))
    if fences % 2:
        closing += "\n```"
    open_details = text.count("<details") - text.count("</details>")
    closing += "\n</details>" * max(0, min(open_details, 8))
    return closing


def cap_body(body: str, marker: str = DEFAULT_MARKER, limit: int = MAX_BODY_CHARS) -> str:
    """Return ``body`` with the marker, cut on a line end to fit ``limit`` if needed.

    The verdict and summary come first in the rendered body, so keeping the head
    and dropping the tail of the table keeps what matters; the note says where the
    rest is.
    """
    if marker not in body:
        body = f"{marker}\n{body}"
    if _cost(body) <= limit:
        return body
    note = (
        "\n\n_The comment was truncated to fit GitHub's limit of "
        f"{limit:,} characters; the full report is in the workflow run's artifacts._\n"
    )
    budget = limit - _cost(note) - _cost(marker) - 64
    kept: list[str] = []
    used = 0
    for line in body.splitlines(keepends=True):
        if used + _cost(line) > budget:
            if not kept:  # one enormous line: cut it rather than post nothing
                kept.append(line[: max(0, budget // 2)])
            break
        kept.append(line)
        used += _cost(line)
    while True:
        text = "".join(kept)
        if marker not in text:
            text = f"{marker}\n{text}"
        text = text.rstrip("\n") + _closers(text) + note
        if _cost(text) <= limit or not kept:
            return text
        kept.pop()


# --- HTTP -------------------------------------------------------------------------


# --- the algorithm ------------------------------------------------------------------


def _field(data: Any, *keys: str) -> Any:
    """``data[k1][k2]...`` for JSON objects, None where a level is missing."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


@frozen
class _Hint:
    number: int | None
    head_sha: str | None
    problem: str | None


def _read_hint(path: Path | None) -> _Hint:
    """Read pr.json from the artifact; a bad hint is reported and then ignored."""
    if path is None:
        return _Hint(None, None, None)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_HINT_BYTES + 1)
    except OSError as exc:
        return _Hint(None, None, f"cannot read {path.name} ({exc.strerror or exc})")
    if len(raw) > MAX_HINT_BYTES:
        return _Hint(None, None, f"{path.name} is larger than {MAX_HINT_BYTES} bytes")
    try:
        data = parse_json(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):  # JSONInputError too: nested too deeply
        return _Hint(None, None, f"{path.name} is not JSON")
    number = _field(data, "pr")
    if number is None:
        number = _field(data, "number")
    sha = _field(data, "head_sha")
    if not (isinstance(number, int) and not isinstance(number, bool) and number > 0):
        return _Hint(None, None, f"{path.name} has no positive integer 'pr'")
    if not (isinstance(sha, str) and _SHA.match(sha.lower())):
        return _Hint(number, None, None)
    return _Hint(number, sha.lower(), None)


def _open_pulls_with_head(client: RestClient, options: _Options) -> list[int]:
    """Numbers of open PRs whose head is the SHA, found by listing open PRs.

    ``workflow_run.pull_requests`` and ``/commits/{sha}/pulls`` miss pull requests
    from forks (actions/runner#3444), so the open PRs are listed and matched on
    ``head.sha``, which GitHub sets and a fork cannot forge for another PR.
    """
    numbers: set[int] = set()
    for pull in client.paginate(f"/repos/{options.repo}/pulls?state=open&per_page=100"):
        if str(_field(pull, "head", "sha") or "").lower() != options.head_sha:
            continue
        head_repo = _field(pull, "head", "repo", "full_name")
        if options.head_repo is not None and (
            not isinstance(head_repo, str) or head_repo.lower() != options.head_repo.lower()
        ):
            continue
        number = _field(pull, "number")
        if isinstance(number, int):
            numbers.add(number)
    return sorted(numbers)


def _choose_pull(numbers: list[int], hint: _Hint, options: _Options) -> tuple[int | None, str]:
    """Pick the PR GitHub names; the hint only breaks a tie it agrees with."""
    short = options.head_sha[:12]
    if hint.number is not None and hint.number in numbers:
        return hint.number, ""
    note = ""
    if hint.number is not None and numbers:
        found = ", ".join(f"#{n}" for n in numbers)
        note = f"pr.json names #{hint.number}, GitHub says head {short} is {found}: trusting GitHub"
    if len(numbers) == 1:
        return numbers[0], note
    if not numbers:
        return None, f"no open PR for head {short}: nothing to do"
    listed = ", ".join(f"#{n}" for n in numbers)
    return None, f"open PRs {listed} share head {short} and pr.json picks none: not commenting"


def _find_sticky(client: RestClient, options: _Options, number: int) -> Any:
    """The oldest comment with the marker by the expected author, across all pages."""
    author = options.author.casefold()
    for comment in client.paginate(f"/repos/{options.repo}/issues/{number}/comments?per_page=100"):
        body = _field(comment, "body")
        login = _field(comment, "user", "login")
        if (
            isinstance(body, str)
            and options.marker in body
            and isinstance(login, str)
            and login.casefold() == author
        ):
            return comment
    return None


def _decide(options: _Options, existing: Any) -> tuple[str | None, str]:
    """The body to post (None: post nothing) and, when nothing, why."""
    if not options.body.strip():
        if existing is None:
            return None, "no results to report and no earlier comment: nothing to post"
        # The earlier comment describes another run; it must not stand for this one.
        return cap_body(NO_RESULTS, options.marker), ""
    if options.when == "on-alert" and not options.alert and existing is None:
        return None, "nothing regressed, failed or is inconclusive: no comment (--when on-alert)"
    return cap_body(options.body, options.marker), ""


def _upsert(client: RestClient, options: _Options, number: int, existing: Any, body: str) -> str:
    if existing is None:
        created = client.request(
            "POST", f"/repos/{options.repo}/issues/{number}/comments", {"body": body}
        )
        return f"created the energy comment on #{number}: {_field(created.data, 'html_url')}"
    comment_id = _field(existing, "id")
    if not isinstance(comment_id, int):
        raise GitHubError("a listed comment has no numeric id")
    url = _field(existing, "html_url")
    if _field(existing, "body") == body:
        return f"the energy comment on #{number} is up to date: {url}"
    client.request("PATCH", f"/repos/{options.repo}/issues/comments/{comment_id}", {"body": body})
    return f"updated the energy comment on #{number} in place: {url}"


def comment_command(
    args: argparse.Namespace,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    environ: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """``run_comment`` with its collaborators injectable, for tests."""
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    env = os.environ if environ is None else environ
    redactor = Redactor(env.get("GITHUB_TOKEN") or env.get("GH_TOKEN") or "")

    def redact(text: str) -> str:
        # Lines quote the server and pr.json: one line each, no escape sequences,
        # so nothing printed can start a workflow command in the job's log.
        return terminal_text(redactor(text))

    try:
        options = _Options.from_args(args, env)
    except UsageError as exc:
        print(redact(f"{_PROG}: error: {exc}"), file=err)
        return EXIT_USAGE
    client = RestClient(options.api_url, options.token, sleep=sleep, clock=clock)
    hint = _read_hint(options.hint_path)
    if hint.problem:
        print(redact(f"{_PROG}: ignoring the pr.json hint: {hint.problem}"), file=out)
    if hint.head_sha is not None and hint.head_sha != options.head_sha:
        print(
            redact(
                f"{_PROG}: pr.json is for head {hint.head_sha[:12]}, not "
                f"{options.head_sha[:12]}: ignoring it"
            ),
            file=out,
        )
        hint = _Hint(None, None, None)
    for problem in options.problems:
        print(redact(f"{_PROG}: skipped results: {problem}"), file=out)
    if options.when == "never":
        print(f"{_PROG}: not commenting (--when never)", file=out)
        return EXIT_OK
    try:
        number, note = _choose_pull(_open_pulls_with_head(client, options), hint, options)
        if note:
            print(redact(f"{_PROG}: {note}"), file=out)
        if number is None:
            return EXIT_OK
        existing = _find_sticky(client, options, number)
        body, why_not = _decide(options, existing)
        if body is None:
            print(redact(f"{_PROG}: {why_not}"), file=out)
            return EXIT_OK
        print(redact(f"{_PROG}: {_upsert(client, options, number, existing, body)}"), file=out)
    except GitHubError as exc:
        print(redact(f"{_PROG}: error: {exc}"), file=err)
        return EXIT_API_FAILURE
    return EXIT_OK
