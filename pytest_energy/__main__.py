"""``python -m pytest_energy``: the same commands as ``pytest-energy``."""

from __future__ import annotations

from pytest_energy.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
