"""PUE and embodied emissions: the two factors besides grid intensity.

PUE (power usage effectiveness) is facility energy / IT energy. The default is
1.0 because the meters measure IT energy only (CPU package, DRAM, GPU board);
a data centre's cooling and power losses are added only when the user asks.

Embodied emissions follow the Green Software Foundation's SCI specification,
``M = TE x (TR / EL) x RS``: the device's total embodied emissions TE, times the
share of its expected lifespan EL that the window used (TR), times the share of
the device reserved for the work (RS). They are a separate figure, never added to
the operational grams: they do not change with the code's energy, and mixing
them in would hide an energy regression.
"""

from __future__ import annotations

from pytest_energy.carbon.values import CarbonError, format_number, parse_number
from pytest_energy.frozen import frozen

#: Eco-CI amortises over ``60*60*24*365*4 = 126144000`` seconds for 4 years, i.e.
#: 365-day years; we use the same so that our figures match theirs.
SECONDS_PER_YEAR = 365 * 24 * 3600


@frozen
class PueChoice:
    """The PUE applied to every figure, with where the number comes from."""

    value: float
    label: str
    source: str


DEFAULT_PUE = PueChoice(1.0, "IT energy only", "default: no data-centre overhead added")

_CCF = "Cloud Carbon Footprint constants (cloud-carbon-footprint@b7a049c, {file})"
#: Named presets. Cloud values: the PUE constants Cloud Carbon Footprint applies per
#: provider (reported by the providers around 2021). Industry: the average of the
#: Uptime Institute's 2023 global survey, flat at 1.55-1.59 since about 2020.
PUE_PRESETS: dict[str, PueChoice] = {
    "aws": PueChoice(1.135, "aws", _CCF.format(file="AwsFootprintEstimationConstants.ts")),
    "gcp": PueChoice(1.1, "gcp", _CCF.format(file="GcpFootprintEstimationConstants.ts")),
    "azure": PueChoice(1.185, "azure", _CCF.format(file="AzureFootprintEstimationConstants.ts")),
    "industry": PueChoice(
        1.58,
        "industry",
        "Uptime Institute Global Data Center Survey 2023 average (Uptime Intelligence, "
        "'Large data centers are mostly more efficient, analysis confirms', Nov 2023)",
    ),
}
_PUE_ALIASES = {"generic-dc": "industry", "it": "", "none": ""}


#: The largest PUE accepted. Surveyed facilities report 1.1 to about 3 (Uptime
#: Institute 2023); 10 leaves room for a server cupboard, while a typo such as
#: 1e308 would overflow every figure it multiplies to infinity, stored as null.
MAX_PUE = 10.0


def parse_pue(raw: str | float | None, *, origin: str = "--energy-pue") -> PueChoice:
    """A PUE from a number (>= 1.0) or a preset name; unset gives 1.0.

    >>> parse_pue("azure").value
    1.185
    """
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return DEFAULT_PUE
    if isinstance(raw, str):
        name = raw.strip().lower()
        name = _PUE_ALIASES.get(name, name)
        if not name:
            return DEFAULT_PUE
        if name in PUE_PRESETS:
            return PUE_PRESETS[name]
    expected = f"a number from 1.0 to {format_number(MAX_PUE)} or one of {', '.join(PUE_PRESETS)}"
    value = parse_number(raw, what="PUE", where=origin, expected=expected)
    if not 1.0 <= value <= MAX_PUE:
        # PUE is total facility energy over IT energy: below 1 would mean the
        # facility creates energy; far above MAX_PUE it is a typo (see there).
        raise CarbonError(f"invalid PUE {raw!r} from {origin}: expected {expected}")
    return PueChoice(value, format_number(value), f"set by {origin}")


#: The range of a user's embodied figure. Outside it the number is a typo, and
#: arithmetic would hide it: 1e308 kg times 1000 g overflows to infinity, which a
#: results file stores as null, so embodied emissions silently vanished; a
#: lifetime of 1e300 years prints as a string of zeros. A server is about a
#: tonne (Eco-CI's dual-EPYC server: 1,151.7 kg), so 1,000 t covers hundreds of
#: servers at once; lifetimes are years (SCI's EL: 4 y in Eco-CI and the Green
#: Metrics Tool), and a share is at most the whole device and at least a millionth.
MAX_EMBODIED_KG = 1_000_000.0
MIN_LIFETIME_YEARS = 0.1
MAX_LIFETIME_YEARS = 100.0
MIN_SHARE = 1e-6


@frozen
class EmbodiedChoice:
    """A device's embodied emissions and how they are amortised (SCI's TE, EL, RS)."""

    kg_co2e: float  # TE: total embodied emissions of the device
    lifetime_years: float  # EL: expected lifespan
    share: float  # RS: share of the device reserved for this work, 0 < share <= 1
    label: str
    source: str

    def grams(self, seconds: float) -> float:
        """Embodied g CO2e attributed to ``seconds`` of use (SCI: TE x TR/EL x RS)."""
        lifetime_s = self.lifetime_years * SECONDS_PER_YEAR
        return self.kg_co2e * 1000.0 * (seconds / lifetime_s) * self.share

    def describe(self) -> str:
        share = "" if self.share == 1.0 else f" x {format_number(self.share)} share"
        return (
            f"{format_number(self.kg_co2e)} kg CO2e over {format_number(self.lifetime_years)} y"
            f"{share} ({self.label})"
        )


#: Presets with a published source; there is deliberately no GPU preset because
#: we found no cited per-card figure to ship.
EMBODIED_PRESETS: dict[str, EmbodiedChoice] = {
    "laptop": EmbodiedChoice(
        181.0,
        4.0,
        1.0,
        "laptop",
        "Green Metrics Tool config.yml.example (TE 181000 gCO2e, EL 4 y: a 'Pro Laptop' "
        "from Boavizta's dataviz), green-coding-solutions/green-metrics-tool@9a14979",
    ),
    "server": EmbodiedChoice(
        1151.7,
        4.0,
        1.0,
        "server",
        "Eco-CI scripts/vars.sh: dual AMD EPYC 7763 server with 448 GB disk, 1151.7 kg "
        "per Boavizta's serversimpact, 4 y (green-coding-solutions/eco-ci-energy-estimation)",
    ),
    "github-runner": EmbodiedChoice(
        1151.7,
        4.0,
        4 / 128,
        "github-runner",
        "Eco-CI scripts/vars.sh: GitHub's 4-vCPU runner as 4/128 of the 1151.7 kg "
        "EPYC 7763 server (35,990.625 gCO2e), 4 y "
        "(green-coding-solutions/eco-ci-energy-estimation)",
    ),
}


def parse_embodied(raw: str | None, *, origin: str = "--energy-embodied") -> EmbodiedChoice | None:
    """``KG,YEARS[,SHARE]`` (e.g. ``1500,4`` or ``1151.7,4,0.03125``) or a preset.

    Unset, empty or ``off`` turns embodied emissions off (``None``).
    """
    if raw is None or raw.strip().lower() in ("", "off", "none"):
        return None
    text = raw.strip()
    if text.lower() in EMBODIED_PRESETS:
        return EMBODIED_PRESETS[text.lower()]
    expected = f"KG,YEARS[,SHARE] such as 1500,4 or one of {', '.join(EMBODIED_PRESETS)}"
    parts = text.split(",")
    if len(parts) not in (2, 3):
        raise CarbonError(f"invalid embodied emissions {raw!r} from {origin}: expected {expected}")
    kg = parse_number(parts[0], what="embodied kg CO2e", where=origin, expected=expected)
    years = parse_number(parts[1], what="device lifetime", where=origin, expected=expected)
    share = 1.0
    if len(parts) == 3:
        share = parse_number(parts[2], what="resource share", where=origin, expected=expected)
    if not (
        0 <= kg <= MAX_EMBODIED_KG
        and MIN_LIFETIME_YEARS <= years <= MAX_LIFETIME_YEARS
        and MIN_SHARE <= share <= 1
    ):
        raise CarbonError(
            f"invalid embodied emissions {raw!r} from {origin}: expected "
            f"0 <= kg <= {format_number(MAX_EMBODIED_KG)}, "
            f"{format_number(MIN_LIFETIME_YEARS)} <= years <= {format_number(MAX_LIFETIME_YEARS)} "
            f"and {format_number(MIN_SHARE)} <= share <= 1"
        )
    return EmbodiedChoice(kg, years, share, "custom", f"set by {origin}")
