"""The plugin's folder (``.energy`` by default): created once, with its ``.gitignore``.

Apart from :mod:`.baselines` so that a run which only appends to the history does not
import the baseline store (every import is part of what ``--energy`` costs a run).
"""

from __future__ import annotations

from pathlib import Path

from pytest_energy.output_files import write_atomic

#: Written once, when the folder is created: baselines are committed, the
#: history and the files of in-flight writes stay on the machine that made them.
GITIGNORE = """\
# Written by pytest-energy. Commit baselines/; the rest is local to this machine.
history.sqlite*
*.lock
*.tmp
"""


def prepare_directory(directory: Path) -> None:
    """Create the pytest-energy folder, with its ``.gitignore``, if it does not exist.

    The ``.gitignore`` is written only when the folder is created, so a user who
    edits or removes it is not overruled.
    """
    try:
        directory.mkdir(parents=True)
    except FileExistsError:
        return
    write_atomic(directory / ".gitignore", GITIGNORE)
