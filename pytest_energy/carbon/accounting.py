"""The session's carbon accounting: one intensity, PUE and embodied choice, applied to
every energy figure as it arrives.

Resolved once on the process that reports (the controller under xdist), so a
live provider is asked at most once per run. CO2e is reported, never gated,
except for a marker's ``max_gco2e`` with a fixed explicit intensity.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING

from pytest_energy.carbon.convert import grams_co2e
from pytest_energy.config.settings import SettingError, Settings
from pytest_energy.frozen import frozen
from pytest_energy.record import Carbon, CarbonSummary, Measurement

if TYPE_CHECKING:
    import pytest

    from pytest_energy.carbon import EmbodiedChoice, IntensityChoice, IntensityProvider, PueChoice


def _origins(settings: Settings) -> dict[str, str]:
    names = {
        "intensity": "carbon_intensity",
        "region": "region",
        "pue": "pue",
        "embodied": "embodied",
        "provider": "intensity_provider",
    }
    return {key: settings.origins.get(option, option) for key, option in names.items()}


@frozen
class SessionCarbon:
    """What turns this session's joules into grams of CO2e."""

    choice: IntensityChoice
    pue: PueChoice
    embodied: EmbodiedChoice | None
    notices: tuple[str, ...] = ()

    @classmethod
    def resolve(
        cls, settings: Settings, config: pytest.Config | None = None, *, live: bool = True
    ) -> SessionCarbon:
        """Validate the carbon settings; raise SettingError with a one-line message."""
        from pytest_energy.carbon import CarbonError, parse_embodied, parse_pue, resolve_intensity
        from pytest_energy.carbon.values import names_a_provider

        origin = _origins(settings)
        notices: list[str] = []
        try:
            choice = resolve_intensity(settings.carbon_intensity, settings.region, origin=origin)
            pue = parse_pue(settings.pue, origin=origin["pue"])
            embodied = parse_embodied(settings.embodied, origin=origin["embodied"])
            if live:
                provider: IntensityProvider | None = None
                if config is not None:
                    provider = config.hook.pytest_energy_intensity_provider(config=config)
                # The live providers' module is imported only when one is named.
                if provider is None and names_a_provider(settings.intensity_provider):
                    from pytest_energy.carbon.live import make_provider

                    provider = make_provider(
                        settings.intensity_provider,
                        origin=origin,
                        cache_path=settings.dir / "cache" / "intensity.json",
                    )
                if provider is not None:
                    from pytest_energy.carbon.live import apply_live_intensity

                    choice, message = apply_live_intensity(choice, provider)
                    if message:
                        notices.append(message)
        except CarbonError as exc:
            raise SettingError(str(exc)) from None
        return cls(choice, pue, embodied, tuple(notices))

    @cached_property
    def _template(self) -> Carbon:
        """Everything of a figure's ``Carbon`` but its grams: the same for every test."""
        from pytest_energy.carbon import carbon_for

        return carbon_for(0.0, self.choice, self.pue)

    def carbon(self, measurement: Measurement, per_unit_j: float | None = None) -> Carbon:
        """CO2e of a test's window, and of one unit of work for a benchmark.

        The same figures as :func:`~pytest_energy.carbon.carbon_for`, without rebuilding
        the source text for each of a suite's tests.
        """
        grams, embodied = self.figures(measurement.total_j, measurement.seconds)
        template = self._template
        per_unit = (
            None
            if per_unit_j is None
            else grams_co2e(per_unit_j, template.intensity_g_per_kwh, template.pue)
        )
        return self.with_figures(grams, embodied, per_unit)

    def figures(self, joules: float, seconds: float) -> tuple[float, float | None]:
        """Operational grams CO2e of ``joules``, and the device's embodied grams for
        ``seconds`` (None without an embodied estimate)."""
        template = self._template
        embodied = self.embodied
        return (
            grams_co2e(joules, template.intensity_g_per_kwh, template.pue),
            None if embodied is None else embodied.grams(seconds),
        )

    def with_figures(
        self, grams: float, embodied_grams: float | None, grams_per_unit: float | None = None
    ) -> Carbon:
        """The session's :class:`Carbon` record of these figures."""
        template = self._template
        return Carbon(
            grams=grams,
            intensity_g_per_kwh=template.intensity_g_per_kwh,
            pue=template.pue,
            source=template.source,
            year=template.year,
            region=template.region,
            embodied_grams=embodied_grams,
            grams_per_unit=grams_per_unit,
        )

    def header_line(self) -> str:
        from pytest_energy.carbon import header_line

        return header_line(self.choice, self.pue, self.embodied)

    def session_record(self, total_grams: float | None) -> CarbonSummary:
        from pytest_energy.carbon import cleaner_region_hint, provenance_line, session_record

        record = session_record(self.choice, self.pue, self.embodied, list(self.notices))
        line = provenance_line(self.choice) + (
            f", PUE {self.pue.value:g}" if self.pue.value != 1 else ""
        )
        hint = cleaner_region_hint(self.choice, total_grams) if total_grams is not None else None
        return replace(record, line=line, hint=hint or "")

    def grams_per_joule(self) -> float | None:
        """For CO2e budgets: only a fixed, user-given intensity may fail a test."""
        if self.choice.kind != "explicit":
            return None
        return self.choice.value * self.pue.value / 3_600_000.0

    def check_budget(self, max_gco2e: float, where: str) -> None:
        from pytest_energy.carbon import CarbonError, validate_co2e_budget

        try:
            validate_co2e_budget(max_gco2e, self.choice, where=where)
        except CarbonError as exc:
            raise SettingError(str(exc)) from None
