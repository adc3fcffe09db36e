"""Every default of pytest-energy, in one place.

The option table, the settings, the gate's functions, the baseline store, the
history and the CLI all take their defaults from here, so a default changes in
one line. Importing this module imports nothing else (the stdlib-only comment
poster reads it too).
"""

from __future__ import annotations

from pathlib import Path

#: The folder for baselines, the history and caches, relative to the rootdir.
ENERGY_DIR = Path(".energy")
#: The history file inside the energy folder.
HISTORY_FILE = "history.sqlite"
HISTORY_PATH = ENERGY_DIR / HISTORY_FILE
BASELINE_NAME = "default"
#: Hidden first line that marks the pull-request comment as ours.
COMMENT_MARKER = "<!-- pytest-energy -->"

# -- measuring
TOP_TESTS = 10
SCOPE = "call"
IDLE_SECONDS = 1.0
RAPL_ROOT = Path("/sys/class/powercap")
ROUNDS = 5
WARMUP_CALLS = 1
CV_LIMIT = 0.05

# -- the gate (docs/gate.md explains each figure)
THRESHOLD = 0.05
MARGIN = 0.01
ALPHA = 0.01
MAX_ROUNDS = 20
#: Processes a baseline is measured in, and fresh processes that confirm a flagged
#: benchmark. benchmarks/gate_power.py, 50 tests: with 3 a side, false alarms stay
#: under 1 % per run with per-process offsets of 0.5-4 %, and +10 % is found in 95 % of
#: runs at CV 3 % with 1 % offsets; with 2 % offsets it takes 5 (89 %, against 61 % with 3).
PROCESSES = 3
#: Worker processes per side of `pytest-energy ab` (the screen; flagged tests get as many
#: again). On the project's shared 2-vCPU VM the spread between process pairs was mostly
#: round noise (5.6 % a round, heavy-tailed), which only more pairs shrink; ten workers
#: started in about 2 s. docs/ab.md, benchmarks/ab_power.py.
AB_PROCESSES = 5
#: Calibration workload drift (end over start) above which a session is unstable.
MAX_DRIFT = 0.02
