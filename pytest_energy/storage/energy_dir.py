"""The plugin's folder (``.energy`` by default): created once, with its ``.gitignore``.

Apart from :mod:`.baselines` so that a run which only appends to the history does not
import the baseline store (every import is part of what ``--energy`` costs a run).
"""

from __future__ import annotations

from pathlib import Path

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
    # The folder is new, so there is no older file to keep whole: a plain exclusive
    # create, without write_atomic's temporary file and two syncs (on a VM's disk each
    # sync is 0.5-3 ms of a run's fixed cost, issue 16). A power cut before the kernel
    # writes it back can cost the file, never anything the user wrote.
    try:
        with (directory / ".gitignore").open("x", encoding="utf-8") as handle:
            handle.write(GITIGNORE)
    except FileExistsError:  # someone wrote one in between: theirs stands
        pass
