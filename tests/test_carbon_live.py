"""The live intensity provider against a local stand-in for Electricity Maps' API.

The server runs on 127.0.0.1 in a thread; no test touches the network.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from pytest_energy.carbon import (
    CarbonError,
    ElectricityMapsProvider,
    LiveIntensity,
    apply_live_intensity,
    make_provider,
    resolve_intensity,
)
from pytest_energy.carbon.live import zone_for

TOKEN = "sekret-token-7f3a"
OK_BODY = {
    "zone": "KR",
    "carbonIntensity": 431,
    "datetime": "2026-05-04T14:00:00.000Z",
    "updatedAt": "2026-05-04T14:05:00.000Z",
    "emissionFactorType": "lifecycle",
    "isEstimated": False,
    "estimationMethod": None,
}


@dataclass
class FakeApi:
    """What the stand-in server answers, and what it was asked."""

    url: str = ""
    status: int = 200
    body: bytes = json.dumps(OK_BODY).encode()
    delay: float = 0.0
    requests: list[dict[str, str]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApi]:
    # urllib honours proxy variables; the local server must be reached directly.
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    state = FakeApi()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            state.requests.append(
                {
                    "path": parts.path,
                    "zone": parse_qs(parts.query).get("zone", [""])[0],
                    "token": self.headers.get("auth-token", ""),
                }
            )
            if state.delay:
                state.release.wait(state.delay)  # the fixture's teardown cuts this short
            try:
                self.send_response(state.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(state.body)))
                self.end_headers()
                self.wfile.write(state.body)
            except OSError:
                pass  # the client gave up waiting, which is what a timeout test wants

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def provider_for(api: FakeApi, **options: Any) -> ElectricityMapsProvider:
    return ElectricityMapsProvider(TOKEN, base_url=api.url, **options)


def test_live_figure_replaces_the_table(api: FakeApi) -> None:
    table = resolve_intensity(None, "KR")
    choice, message = apply_live_intensity(table, provider_for(api))
    assert message is None
    assert (choice.kind, choice.value, choice.region, choice.year) == ("live", 431.0, "KOR", 2026)
    assert (choice.source, choice.basis) == ("Electricity Maps", "lifecycle")
    assert choice.as_of == "2026-05-04T14:00:00.000Z"
    assert api.requests == [{"path": "/v3/carbon-intensity/latest", "zone": "KR", "token": TOKEN}]
    assert "Electricity Maps 2026-05-04T14:00:00.000Z (lifecycle)" in choice.describe()


def test_direct_factors_are_operational(api: FakeApi) -> None:
    api.body = json.dumps({**OK_BODY, "emissionFactorType": "direct"}).encode()
    live = provider_for(api).intensity("KOR")
    assert live is not None
    assert live.basis == "operational"


def test_second_call_is_served_from_the_cache(api: FakeApi) -> None:
    provider = provider_for(api)
    first = provider.intensity("KOR")
    second = provider.intensity("KOR")
    assert first == second
    assert len(api.requests) == 1


def test_cache_expires_after_its_ttl(api: FakeApi) -> None:
    now = [1000.0]
    provider = provider_for(api, ttl=60.0, clock=lambda: now[0])
    provider.intensity("KOR")
    now[0] += 59
    provider.intensity("KOR")
    assert len(api.requests) == 1
    now[0] += 2
    provider.intensity("KOR")
    assert len(api.requests) == 2


def test_disk_cache_serves_a_new_process_without_the_token(api: FakeApi, tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "intensity.json"
    assert provider_for(api, cache_path=cache).intensity("KOR") is not None
    again = provider_for(api, cache_path=cache).intensity("KOR")
    assert again is not None
    assert again.g_per_kwh == 431.0
    assert len(api.requests) == 1
    assert TOKEN not in cache.read_text(encoding="utf-8")


def test_corrupt_disk_cache_is_ignored(api: FakeApi, tmp_path: Path) -> None:
    cache = tmp_path / "intensity.json"
    cache.write_text('{"KR": {"fetched_at": "soon"}}', encoding="utf-8")
    assert provider_for(api, cache_path=cache).intensity("KOR") is not None
    assert len(api.requests) == 1


def test_timeout_falls_back_within_the_bound_and_gives_up(api: FakeApi) -> None:
    api.delay = 10.0
    provider = provider_for(api, timeout=0.3)
    table = resolve_intensity(None, "KR")
    started = time.monotonic()
    choice, message = apply_live_intensity(table, provider)
    elapsed = time.monotonic() - started
    # Not a speed check: it only tells "gave up near 0.3 s" from "waited out the 10-s server".
    assert elapsed < api.delay / 2
    assert choice == table
    assert message == (
        "live carbon intensity from electricitymaps unavailable (no answer within 0.3 s); "
        "using 415.65 g/kWh, KOR, Ember 2024 (lifecycle)"
    )
    # Given up for the process: no second request (so no second wait).
    assert provider.intensity("FRA") is None
    assert len(api.requests) == 1


@pytest.mark.parametrize("status", [401, 403])
def test_unauthorised(api: FakeApi, status: int) -> None:
    api.status = status
    api.body = b'{"error": "Invalid auth-token"}'
    choice, message = apply_live_intensity(resolve_intensity(None, "FR"), provider_for(api))
    assert choice.kind == "region"
    assert message is not None
    assert f"HTTP {status}: the token in ELECTRICITYMAPS_TOKEN was refused" in message
    assert message.endswith("using 44.18 g/kWh, FRA, Ember 2024 (lifecycle)")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"<html>not json</html>", "the answer was not JSON"),
        (b"\xff\xfe", "the answer was not JSON"),
        (b'{"zone": "KR"}', "the answer had no carbonIntensity"),
        (b'{"carbonIntensity": "431"}', "the answer had no carbonIntensity"),
        (b'{"carbonIntensity": -5}', "is not a figure"),
        (b"[431]", "the answer had no carbonIntensity"),
    ],
)
def test_bad_answers_fall_back(api: FakeApi, body: bytes, problem: str) -> None:
    api.body = body
    choice, message = apply_live_intensity(resolve_intensity(None, "KR"), provider_for(api))
    assert choice.value == 415.65
    assert message is not None
    assert problem in message


def test_unknown_zone(api: FakeApi) -> None:
    api.status = 404
    _, message = apply_live_intensity(resolve_intensity(None, "US"), provider_for(api))
    assert message is not None
    assert "HTTP 404: no data for zone US" in message


def test_unreachable_server() -> None:
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = ElectricityMapsProvider(TOKEN, base_url=f"http://127.0.0.1:{port}", timeout=2.0)
    _, message = apply_live_intensity(resolve_intensity(None, "KR"), provider)
    assert message is not None
    assert "unreachable" in message


def test_missing_token_asks_nothing(api: FakeApi) -> None:
    provider = ElectricityMapsProvider(None, base_url=api.url)
    _, message = apply_live_intensity(resolve_intensity(None, "KR"), provider)
    assert message is not None
    assert "ELECTRICITYMAPS_TOKEN is not set" in message
    assert api.requests == []


@pytest.mark.parametrize("region", ["gcp:europe-west1", None])
def test_regions_without_a_zone_keep_the_table(api: FakeApi, region: str | None) -> None:
    table = resolve_intensity(None, region)
    choice, message = apply_live_intensity(table, provider_for(api))
    assert choice == table
    assert message is not None
    assert "no Electricity Maps zone" in message
    assert api.requests == []


def test_explicit_intensity_is_never_replaced(api: FakeApi) -> None:
    table = resolve_intensity("250", "KR")
    choice, message = apply_live_intensity(table, provider_for(api))
    assert choice == table
    assert message == "--energy-carbon-intensity is set, so electricitymaps was not asked"
    assert api.requests == []


def test_no_provider_changes_nothing() -> None:
    table = resolve_intensity(None, "KR")
    assert apply_live_intensity(table, None) == (table, None)


@pytest.mark.parametrize(
    ("status", "body", "delay"),
    [
        (200, json.dumps(OK_BODY).encode(), 0.0),
        (401, b"{}", 0.0),
        (500, b"oops", 0.0),
        (200, b"not json", 0.0),
        (200, b"{}", 10.0),
    ],
)
def test_token_never_appears_in_messages(
    api: FakeApi, tmp_path: Path, status: int, body: bytes, delay: float
) -> None:
    api.status, api.body, api.delay = status, body, delay
    provider = provider_for(api, timeout=0.3, cache_path=tmp_path / "c.json")
    choice, message = apply_live_intensity(resolve_intensity(None, "KR"), provider)
    shown = [message or "", provider.problem or "", repr(provider), str(choice), choice.describe()]
    if (tmp_path / "c.json").exists():
        shown.append((tmp_path / "c.json").read_text(encoding="utf-8"))
    assert all(TOKEN not in text for text in shown)


def test_make_provider_from_environment(api: FakeApi) -> None:
    environ = {"ELECTRICITYMAPS_TOKEN": TOKEN, "PYTEST_ENERGY_ELECTRICITYMAPS_URL": api.url}
    provider = make_provider("electricitymaps", environ=environ)
    assert isinstance(provider, ElectricityMapsProvider)
    assert provider.base_url == api.url
    assert provider.timeout == 2.0
    assert provider.intensity("KOR") is not None
    assert api.requests[0]["token"] == TOKEN


@pytest.mark.parametrize("name", [None, "", "off", "none", "OFF"])
def test_make_provider_off(name: str | None) -> None:
    assert make_provider(name, environ={}) is None


def test_make_provider_unknown_names_its_origin() -> None:
    with pytest.raises(CarbonError) as info:
        make_provider("watttime", origin={"provider": "PYTEST_ENERGY_INTENSITY_PROVIDER"})
    assert str(info.value) == (
        "unknown intensity provider 'watttime' (from PYTEST_ENERGY_INTENSITY_PROVIDER); "
        "use electricitymaps or off"
    )


@pytest.mark.parametrize(
    ("region", "zone"),
    [("KOR", "KR"), ("FRA", "FR"), ("XKX", "XK"), ("fr", "FR"), ("WORLD", None),
     ("gcp:europe-west1", None), ("custom", None)],
)  # fmt: skip
def test_zone_mapping(region: str, zone: str | None) -> None:
    assert zone_for(region) == zone


def test_any_object_with_the_protocol_is_a_provider() -> None:
    class Fixed:
        name = "fixed"

        def intensity(self, region: str) -> LiveIntensity | None:
            return LiveIntensity(100.0, region, "2026-01-01T00:00:00Z", "lifecycle", source="Mine")

    choice, message = apply_live_intensity(resolve_intensity(None, "DE"), Fixed())
    assert message is None
    assert (choice.value, choice.source, choice.year) == (100.0, "Mine", 2026)


def test_a_provider_without_a_figure_gets_a_generic_reason() -> None:
    class Empty:
        name = "empty"

        def intensity(self, region: str) -> LiveIntensity | None:
            return None

    _, message = apply_live_intensity(resolve_intensity(None, "DE"), Empty())
    assert message == (
        "live carbon intensity from empty unavailable (no figure); "
        "using 342.06 g/kWh, DEU, Ember 2024 (lifecycle)"
    )
