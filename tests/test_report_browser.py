"""The HTML report in a real browser: headless Chromium, no network.

Skipped when Chromium is absent (``.ci/run`` installs Debian's ``chromium``).
Chromium is driven over its DevTools protocol on a pipe
(``--remote-debugging-pipe``: NUL-terminated JSON on file descriptors 3 and 4),
so the test needs no Python package beyond the standard library.

Screenshots land in the test's ``tmp_path``; set ``ENERGY_REPORT_SCREENSHOTS=DIR``
to keep them somewhere you can look at them (not a ``PYTEST_ENERGY_`` name:
conftest clears those for every test).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from records import hostile_record, sample_record, scale_history, scale_record

from pytest_energy.report.html import render_html


def _chromium() -> str | None:
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    return shutil.which("chromium") or shutil.which("chromium-browser")


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--hide-scrollbars",
    # No network at all: every host resolves to nothing and no proxy is reachable.
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=127.0.0.1:9",
    "--remote-debugging-pipe",
]


TRAMPOLINE = """
import os, sys
ends = [int(sys.argv[1]), int(sys.argv[2])]
spare = [os.dup(fd) for fd in ends]  # copies first, so neither dup2 clobbers an end
os.dup2(spare[0], 3)
os.dup2(spare[1], 4)
os.set_inheritable(3, True)  # dup2 onto itself keeps dup()'s close-on-exec flag
os.set_inheritable(4, True)
for fd in set(ends + spare) - {3, 4}:
    os.close(fd)
os.execv(sys.argv[3], sys.argv[3:])
"""


class Browser:
    """A minimal DevTools-protocol client over Chromium's debugging pipe."""

    def __init__(self, user_data_dir: Path) -> None:
        assert CHROMIUM is not None
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        # Chromium reads commands from fd 3 and writes replies to fd 4. A small Python
        # trampoline moves the pipe ends there and execs Chromium (no preexec_fn,
        # which is unsafe once threads exist; sh cannot name fds above 9).
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                TRAMPOLINE,
                str(to_child_r),
                str(from_child_w),
                CHROMIUM,
                *FLAGS,
                f"--user-data-dir={user_data_dir}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(to_child_r, from_child_w),
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self.session: str | None = None

    def send(
        self, method: str, params: dict[str, Any] | None = None, *, timeout: float = 30.0
    ) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if self.session and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self.session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        for reply in self._messages(timeout):
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            self.events.append(reply)
        raise TimeoutError(method)

    def wait_for(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        for event in list(self.events):
            if event.get("method") == method:
                return event
        for event in self._messages(timeout):
            self.events.append(event)
            if event.get("method") == method:
                return event
        raise TimeoutError(method)

    def _messages(self, timeout: float) -> Iterator[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                yield json.loads(raw)
            ready, _, _ = select.select([self._from_child], [], [], 0.2)
            if ready:
                chunk = os.read(self._from_child, 1 << 20)
                if not chunk:
                    return
                self._buffer += chunk

    def open(self, url: str, width: int = 1280, height: int = 900) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"})
        attached = self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        self.session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
        )
        self.send("Page.navigate", {"url": url})
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        reply = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in reply:
            raise RuntimeError(reply["exceptionDetails"])
        return reply["result"].get("value")

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element, as a user would make it."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": box[0], "y": box[1], "button": "left", "clickCount": 1},
            )

    def screenshot(self, path: Path, *, full_page: bool = False) -> None:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
            size = self.evaluate(
                "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
            )
            params["clip"] = {
                "x": 0,
                "y": 0,
                "width": size[0],
                "height": min(size[1], 6000),
                "scale": 1,
            }
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", params)["data"]))

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions and CSP violations seen so far."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(f"exception: {params['exceptionDetails'].get('text')}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in (
                "error",
                "warning",
            ):
                found.append(f"console.{params['type']}: {params.get('args')}")
            elif method == "Log.entryAdded" and params["entry"].get("level") in (
                "error",
                "warning",
            ):
                found.append(f"log: {params['entry'].get('text')}")
        return found

    def requests(self) -> list[str]:
        return [
            e["params"]["request"]["url"]
            for e in self.events
            if e.get("method") == "Network.requestWillBeSent"
        ]

    def close(self) -> None:
        with contextlib.suppress(TimeoutError, RuntimeError, OSError):
            self.send("Browser.close", timeout=5)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_child)
        os.close(self._from_child)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    instance = Browser(tmp_path / "profile")
    try:
        yield instance
    finally:
        instance.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    keep = os.environ.get("ENERGY_REPORT_SCREENSHOTS")
    directory = Path(keep) if keep else tmp_path / "screenshots"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _first_column(browser: Browser) -> list[str]:
    values: list[str] = browser.evaluate(
        "Array.from(document.querySelectorAll('#tests tbody tr'))"
        ".map(tr => tr.getAttribute('data-i'))"
    )
    return values


def test_report_opens_offline_and_sorts(browser: Browser, tmp_path: Path, shots: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(sample_record()), encoding="utf-8")
    browser.open(page.as_uri())

    assert browser.evaluate("document.getElementById('test-controls').hidden") is False
    before = _first_column(browser)
    browser.click("#tests thead th[data-col='2'] button")  # Energy
    after = _first_column(browser)
    assert sorted(after) == sorted(before)
    assert after != before
    energies = browser.evaluate(
        "Array.from(document.querySelectorAll('#tests tbody tr')).map("
        "tr => JSON.parse(document.getElementById('energy-data').textContent)"
        ".tests[Number(tr.getAttribute('data-i'))][2])"
    )
    numbers = [e for e in energies if e is not None]
    assert numbers == sorted(numbers)
    assert energies[len(numbers) :] == [None] * (len(energies) - len(numbers))
    assert (
        browser.evaluate(
            "document.querySelector(\"#tests th[data-col='2']\").getAttribute('aria-sort')"
        )
        == "ascending"
    )

    browser.click("#tests thead th[data-col='2'] button")  # again: descending
    energies = browser.evaluate(
        "Array.from(document.querySelectorAll('#tests tbody tr')).map("
        "tr => tr.children[2].textContent)"
    )
    assert energies[0] == "21.6 kJ"

    browser.screenshot(shots / "report-1280.png", full_page=True)
    assert browser.problems() == []
    assert browser.requests() == [page.as_uri()]


def test_filter_hides_rows(browser: Browser, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(sample_record()), encoding="utf-8")
    browser.open(page.as_uri())
    browser.evaluate(
        "(() => { const s = document.getElementById('verdict-filter');"
        " s.value = 'regression'; s.dispatchEvent(new Event('change')); })()"
    )
    visible = browser.evaluate(
        "Array.from(document.querySelectorAll('#tests tbody tr')).filter(tr => !tr.hidden).length"
    )
    assert visible == 2
    assert browser.evaluate("document.getElementById('test-count').textContent") == ("2 of 8 tests")
    assert browser.problems() == []


def test_hostile_ids_stay_text_in_a_browser(browser: Browser, tmp_path: Path, shots: Path) -> None:
    page = tmp_path / "hostile.html"
    page.write_text(render_html(hostile_record()), encoding="utf-8")
    browser.open(page.as_uri(), width=390, height=844)  # a phone
    # Injected markup would have created elements or run alert(); neither happened.
    assert browser.evaluate("document.querySelectorAll('script').length") == 2
    assert (
        browser.evaluate(
            "document.querySelectorAll('img, iframe, i, header b, #families b').length"
        )
        == 0
    )
    ids = browser.evaluate(
        "Array.from(document.querySelectorAll('#tests tbody th')).map(th => th.textContent)"
    )
    assert any("<script>alert(1)</script>" in text for text in ids)
    browser.click("#tests thead th[data-col='0'] button")
    browser.screenshot(shots / "hostile-phone.png", full_page=True)
    width = browser.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, "the page must not scroll sideways on a phone; the table does"
    assert browser.problems() == []
    assert browser.requests() == [page.as_uri()]


def test_large_report_sorts_in_the_browser(browser: Browser, tmp_path: Path, shots: Path) -> None:
    record = scale_record(2000)
    page = tmp_path / "large.html"
    page.write_text(render_html(record, history=scale_history(record)), encoding="utf-8")
    browser.open(page.as_uri())
    browser.click("#tests thead th[data-col='7'] button")  # ratio
    # How fast this is belongs to benchmarks/report_scale.py; here: all rows, in order.
    ratios = browser.evaluate(
        "(() => { const data = JSON.parse(document.getElementById('energy-data').textContent);"
        " return Array.from(document.querySelectorAll('#tests tbody tr')).map("
        "tr => data.tests[Number(tr.getAttribute('data-i'))][7]); })()"
    )
    assert len(ratios) == 2000
    known = [ratio for ratio in ratios if ratio not in (None, "")]
    assert known, "the large report must have ratios to sort"
    assert known == sorted(known)
    assert all(ratio in (None, "") for ratio in ratios[len(known) :])  # missing sort last
    browser.screenshot(shots / "large-1280.png")
    assert browser.problems() == []
