"""Live grid intensity behind a small provider interface; off by default.

A provider answers ``intensity(region)`` with a ``LiveIntensity`` or ``None``.
The one bundled provider asks Electricity Maps'
``GET /v3/carbon-intensity/latest?zone=XX`` (header ``auth-token``) with the
standard library only. Rules that keep a test run safe:

* one request per zone per TTL, from an in-memory and optional on-disk cache;
* a hard bound of ``timeout`` seconds (2 s by default) on the whole request,
  DNS and a slow server included: the request runs in a daemon thread that is
  abandoned at the deadline;
* after the first failure the provider gives up for the process, so a session
  is delayed at most once and gets one message, then uses the table;
* the token is sent in a header only: never logged, cached, or put in messages.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Protocol

from pytest_energy.carbon.countries import ALPHA2_TO_ALPHA3, ALPHA3_TO_ALPHA2
from pytest_energy.carbon.intensity import IntensityChoice, provenance_line
from pytest_energy.carbon.tables import Basis
from pytest_energy.carbon.values import NO_PROVIDER, CarbonError, origin_of
from pytest_energy.frozen import frozen
from pytest_energy.output_files import write_atomic

TOKEN_ENV = "ELECTRICITYMAPS_TOKEN"
URL_ENV = "PYTEST_ENERGY_ELECTRICITYMAPS_URL"
DEFAULT_URL = "https://api.electricitymap.org"
DEFAULT_TIMEOUT_S = 2.0
#: Electricity Maps' "latest" figure is hourly; 15 minutes keeps repeated local
#: runs from spending the free tier's requests while staying within the hour.
DEFAULT_TTL_S = 900.0
PROVIDERS = ("electricitymaps",)
_ALIASES = {"electricity-maps": "electricitymaps", "electricitymap": "electricitymaps"}


@frozen
class LiveIntensity:
    """A provider's current figure for one zone."""

    g_per_kwh: float
    zone: str
    datetime: str  # the provider's timestamp, as given
    basis: Basis
    estimated: bool = False
    source: str = "Electricity Maps"
    attribution: str = "Electricity Maps (https://www.electricitymaps.com), live API"


class IntensityProvider(Protocol):
    """What ``--energy-intensity-provider`` plugs in; a hook may return one too."""

    name: str

    def intensity(self, region: str) -> LiveIntensity | None:
        """The live figure for one of our region codes (``KOR``), or None."""
        ...


class _Failure(Exception):
    """A request that gave no usable figure; the message is safe to show."""


def zone_for(region: str) -> str | None:
    """The Electricity Maps zone of a region: its alpha-2 code, for countries only.

    Cloud regions and WORLD have no straightforward zone (a zone is a grid, not a
    data centre), so they get None and the caller falls back to the table.
    """
    code = region.strip().upper()
    if code in ALPHA3_TO_ALPHA2:
        return ALPHA3_TO_ALPHA2[code]
    if code in ALPHA2_TO_ALPHA3:
        return code
    return None


class ElectricityMapsProvider:
    """Electricity Maps' latest carbon intensity, cached, with a hard time bound."""

    name = "electricitymaps"

    def __init__(
        self,
        token: str | None,
        *,
        base_url: str = DEFAULT_URL,
        timeout: float = DEFAULT_TIMEOUT_S,
        ttl: float = DEFAULT_TTL_S,
        cache_path: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._token = token or None
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.ttl = ttl
        self.cache_path = cache_path
        self._clock = clock
        self._memory: dict[str, tuple[float, LiveIntensity]] = {}
        self._gave_up = False
        #: Why the last call returned None; safe to show (never holds the token).
        self.problem: str | None = None

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **options: Any
    ) -> ElectricityMapsProvider:
        env = os.environ if environ is None else environ
        base_url = env.get(URL_ENV) or DEFAULT_URL
        return cls(env.get(TOKEN_ENV), base_url=base_url, **options)

    def __repr__(self) -> str:  # shows where it asks, never the token
        return f"ElectricityMapsProvider(base_url={self.base_url!r}, timeout={self.timeout})"

    def intensity(self, region: str) -> LiveIntensity | None:
        zone = zone_for(region)
        if zone is None:
            self.problem = f"no Electricity Maps zone for region {region} (countries only)"
            return None
        cached = self._cached(zone)
        if cached is not None:
            return cached
        if self._gave_up:
            return None
        if self._token is None:
            self._gave_up = True
            self.problem = f"{TOKEN_ENV} is not set"
            return None
        try:
            live = self._fetch(zone)
        except _Failure as exc:
            self._gave_up = True
            self.problem = str(exc)
            return None
        self._remember(zone, live)
        self.problem = None
        return live

    # -- cache --------------------------------------------------------------

    def _fresh(self, fetched_at: float) -> bool:
        return 0 <= self._clock() - fetched_at < self.ttl

    def _cached(self, zone: str) -> LiveIntensity | None:
        hit = self._memory.get(zone)
        if hit is not None and self._fresh(hit[0]):
            return hit[1]
        entry = self._disk().get(zone)
        if not isinstance(entry, dict):
            return None
        try:
            fetched_at = float(entry["fetched_at"])
            live = LiveIntensity(**{k: v for k, v in entry.items() if k != "fetched_at"})
        except (KeyError, TypeError, ValueError):
            return None  # an entry from another version: ask again
        if not self._fresh(fetched_at):
            return None
        self._memory[zone] = (fetched_at, live)
        return live

    def _disk(self) -> dict[str, Any]:
        if self.cache_path is None:
            return {}
        try:
            data = json.loads(self.cache_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _remember(self, zone: str, live: LiveIntensity) -> None:
        now = self._clock()
        self._memory[zone] = (now, live)
        if self.cache_path is None:
            return
        data = self._disk()
        data[zone] = {**asdict(live), "fetched_at": now}
        # A read-only cache folder costs a request next time, nothing more.
        with contextlib.suppress(OSError):
            write_atomic(self.cache_path, json.dumps(data, indent=1) + "\n")

    # -- request ------------------------------------------------------------

    def _fetch(self, zone: str) -> LiveIntensity:
        """Run the request in a daemon thread and stop waiting at the deadline."""
        box: dict[str, LiveIntensity | str] = {}

        def work() -> None:
            try:
                box["result"] = self._request(zone)
            except _Failure as exc:
                box["error"] = str(exc)
            except Exception as exc:  # a thread must not raise: say what happened
                box["error"] = f"unexpected {type(exc).__name__}"

        thread = threading.Thread(target=work, name="pytest-energy-intensity", daemon=True)
        thread.start()
        thread.join(self.timeout)
        result = box.get("result")
        if isinstance(result, LiveIntensity):
            return result
        if thread.is_alive():
            raise _Failure(f"no answer within {self.timeout:g} s")
        raise _Failure(str(box.get("error", "no answer")))

    def _request(self, zone: str) -> LiveIntensity:
        # Imported here: urllib.request pulls in http.client, email and ssl, which a
        # session that never asks a live provider should not pay for.
        import urllib.error
        import urllib.parse
        import urllib.request

        query = urllib.parse.urlencode({"zone": zone})
        request = urllib.request.Request(
            f"{self.base_url}/v3/carbon-intensity/latest?{query}",
            headers={"auth-token": self._token or "", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read(1 << 16)
        except urllib.error.HTTPError as exc:
            exc.close()
            raise _Failure(_http_problem(exc.code, zone)) from None
        except (TimeoutError, urllib.error.URLError) as exc:
            # The socket's own timeout and the caller's deadline fire together: say
            # the same thing whichever comes first.
            if isinstance(exc, TimeoutError) or isinstance(exc.reason, TimeoutError):
                raise _Failure(f"no answer within {self.timeout:g} s") from None
            raise _Failure(f"unreachable ({exc.reason})") from None
        except OSError as exc:  # a reset while reading
            raise _Failure(f"unreachable ({type(exc).__name__})") from None
        return _parse(body, zone)


def _http_problem(code: int, zone: str) -> str:
    if code in (401, 403):
        return f"HTTP {code}: the token in {TOKEN_ENV} was refused"
    if code in (400, 404):
        return f"HTTP {code}: no data for zone {zone} (split countries need a sub-zone)"
    if code == 429:
        return "HTTP 429: rate limit reached"
    return f"HTTP {code}"


def _parse(body: bytes, zone: str) -> LiveIntensity:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise _Failure("the answer was not JSON") from None
    value = data.get("carbonIntensity") if isinstance(data, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Failure("the answer had no carbonIntensity")
    if not math.isfinite(value) or value < 0:
        raise _Failure(f"the answer's carbonIntensity {value!r} is not a figure")
    # The API defaults to lifecycle factors; "direct" means operational emissions.
    basis: Basis = "operational" if data.get("emissionFactorType") == "direct" else "lifecycle"
    return LiveIntensity(
        g_per_kwh=float(value),
        zone=str(data.get("zone") or zone),
        datetime=str(data.get("datetime") or ""),
        basis=basis,
        estimated=bool(data.get("isEstimated")),
    )


def make_provider(
    name: str | None,
    *,
    origin: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
    cache_path: Path | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> IntensityProvider | None:
    """The provider named by ``--energy-intensity-provider``; None when off."""
    key = (name or "").strip().lower()
    key = _ALIASES.get(key, key)
    if key in NO_PROVIDER:
        return None
    if key == "electricitymaps":
        return ElectricityMapsProvider.from_env(environ, cache_path=cache_path, timeout=timeout)
    raise CarbonError(
        f"unknown intensity provider {name!r} (from {origin_of('provider', origin)}); "
        f"use {', '.join(PROVIDERS)} or off"
    )


def apply_live_intensity(
    choice: IntensityChoice, provider: IntensityProvider | None
) -> tuple[IntensityChoice, str | None]:
    """Replace a table figure with the provider's live one, or say why not (one line).

    An explicit number is never replaced: the user fixed it on purpose.
    """
    if provider is None:
        return choice, None
    if choice.kind == "explicit":
        return choice, f"{choice.origin} is set, so {provider.name} was not asked"
    live = provider.intensity(choice.region)
    if live is None:
        why = getattr(provider, "problem", None) or "no figure"
        return choice, (
            f"live carbon intensity from {provider.name} unavailable ({why}); "
            f"using {provenance_line(choice)}"
        )
    head = live.datetime[:4]
    source = f"{live.source} (estimated)" if live.estimated else live.source
    return replace(
        choice,
        value=live.g_per_kwh,
        kind="live",
        source=source,
        year=int(head) if head.isdigit() else None,
        basis=live.basis,
        licence="Electricity Maps API terms",
        attribution=live.attribution,
        as_of=live.datetime or None,
        note="" if live.datetime else "time not stated",
    ), None
