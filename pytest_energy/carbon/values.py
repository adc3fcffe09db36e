"""Errors of the carbon library and the parsing of numbers that users type.

Every value a user can get wrong (an intensity, a PUE, an embodied figure, a
budget) is parsed here, so that the one-line error always names where the value
came from: ``--energy-carbon-intensity``, ``PYTEST_ENERGY_CARBON_INTENSITY`` or
``energy_carbon_intensity in the ini file``. The integrator passes those names
in an ``origin`` mapping; the defaults below are the command-line spellings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

#: Where a value came from when the caller does not say: the command-line option.
DEFAULT_ORIGINS: dict[str, str] = {
    "intensity": "--energy-carbon-intensity",
    "region": "--energy-region",
    "pue": "--energy-pue",
    "embodied": "--energy-embodied",
    "provider": "--energy-intensity-provider",
}


class CarbonError(ValueError):
    """A carbon setting or a value that cannot be used; the message is one line."""


class CarbonDataError(CarbonError):
    """A bundled or user-supplied intensity table that does not load."""


def origin_of(key: str, origin: Mapping[str, str] | None) -> str:
    """The name of the place a setting came from, for error messages."""
    if origin and origin.get(key):
        return origin[key]
    return DEFAULT_ORIGINS.get(key, key)


def parse_number(raw: object, *, what: str, where: str, expected: str) -> float:
    """A finite float from a user's text or number, or a one-line ``CarbonError``.

    ``what`` names the quantity ("carbon intensity"), ``where`` its origin and
    ``expected`` what would have been accepted ("a number of g CO2e/kWh >= 0").
    """
    if isinstance(raw, bool):  # True is an int in Python, never a meaningful figure
        raise CarbonError(f"invalid {what} {raw!r} from {where}: expected {expected}")
    if isinstance(raw, int | float):
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw.strip().replace("_", ""))
        except ValueError:
            raise CarbonError(f"invalid {what} {raw!r} from {where}: expected {expected}") from None
    else:
        raise CarbonError(f"invalid {what} {raw!r} from {where}: expected {expected}")
    if not math.isfinite(value):
        raise CarbonError(f"invalid {what} {raw!r} from {where}: expected {expected}")
    return value


def format_number(value: float) -> str:
    """A figure as people write it: ``472.94``, ``305``, ``1.135`` (up to 6 digits)."""
    text = f"{value:.6g}"
    if "e" in text and abs(value) >= 1:  # large values read better without an exponent
        text = f"{value:.0f}"
    return text


#: ``--energy-intensity-provider`` values that mean "no live provider".
NO_PROVIDER = frozenset({"", "off", "none", "table"})


def names_a_provider(name: str | None) -> bool:
    """Whether ``--energy-intensity-provider`` asks for a live provider (valid or not)."""
    return (name or "").strip().lower() not in NO_PROVIDER
