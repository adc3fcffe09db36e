"""The controller's side of the worker processes: start, talk to, and stop them.

A worker is ``python -m pytest --energy -p pytest_energy.ab.worker`` run in its
tree with the current interpreter (the current environment), in a session of
its own so that Ctrl-C reaches the controller alone and the controller stops
every worker in order. Its stdout and stderr go to a log file, never to a pipe
that could fill up unread; the protocol has a socket of its own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from pytest_energy.ab.protocol import (
    FD_ENV,
    SIDE_ENV,
    TREE_ENV,
    Channel,
    ChannelClosed,
    Message,
)
from pytest_energy.ab.trees import Tree

#: Seconds a worker may take to start and collect, and to answer a ``test`` command
#: (its fixtures, warm-up and sizing); a round gets the larger of this and 20 rounds.
START_TIMEOUT_S = 300.0
#: Seconds a worker gets to finish its session after ``quit`` before it is stopped.
QUIT_TIMEOUT_S = 20.0

#: Options every worker runs with: measure, no history or cache written into the
#: tree, no drift check (rounds alternate instead), no parallel workers.
WORKER_OPTIONS = (
    "--energy",
    "-p",
    "pytest_energy.ab.worker",
    "-p",
    "no:cacheprovider",
    "-p",
    "no:xdist",
    "--energy-history=off",
    "--energy-calibration=off",
    "--energy-idle-seconds=0",
    "-q",
)


class WorkerGone(Exception):
    """A worker died or stopped answering; the message is one line with its last output."""


class WorkerProcess:
    """One long-lived pytest process measuring one tree."""

    def __init__(
        self,
        tree: Tree,
        slot: int,
        process: subprocess.Popen[bytes],
        channel: Channel,
        log: Path,
    ) -> None:
        self.tree = tree
        self.slot = slot
        self.process = process
        self.channel = channel
        self.log = log
        self.alive = True

    @property
    def name(self) -> str:
        return f"{self.tree.side} worker {self.slot + 1}"

    @classmethod
    def start(
        cls,
        tree: Tree,
        slot: int,
        *,
        cwd: Path,
        arguments: list[str],
        folder: Path,
        generation: int = 0,
    ) -> WorkerProcess:
        mine, theirs = socket.socketpair()
        log = folder / f"{tree.side}-{slot + 1}-{generation}.log"
        energy_dir = folder / f"energy-{tree.side}-{slot + 1}-{generation}"
        env = {
            **os.environ,
            FD_ENV: str(theirs.fileno()),
            TREE_ENV: str(tree.path),
            SIDE_ENV: tree.side,
        }
        env.pop("PYTEST_ENERGY_REPLICA", None)
        command = [
            sys.executable,
            "-m",
            "pytest",
            *WORKER_OPTIONS,
            f"--energy-dir={energy_dir}",
            *arguments,
        ]
        try:
            with log.open("wb") as out:
                process = subprocess.Popen(
                    command,
                    cwd=cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    pass_fds=(theirs.fileno(),),
                    start_new_session=True,
                )
        except OSError as exc:
            mine.close()
            raise WorkerGone(f"the {tree.side} worker could not start: {exc}") from None
        finally:
            theirs.close()
        return cls(tree, slot, process, Channel(mine), log)

    def send(self, message: Message) -> None:
        try:
            self.channel.send(message)
        except ChannelClosed as exc:
            raise self._gone(str(exc)) from None

    def expect(self, *events: str, timeout: float = START_TIMEOUT_S) -> Message:
        """The next message, which must be one of ``events``; :class:`WorkerGone` otherwise."""
        try:
            message = self.channel.receive(timeout)
        except ChannelClosed as exc:
            raise self._gone(str(exc)) from None
        if message.get("event") not in events:
            raise self._gone(f"unexpected message {message.get('event')!r}")
        return message

    def _gone(self, why: str) -> WorkerGone:
        self.kill()
        code = self.process.poll()
        status = f"exit {code}" if code is not None else why
        return WorkerGone(
            f"{self.name} ({self.tree.short}) stopped ({status}): {self.last_output()}"
        )

    def last_output(self) -> str:
        """The last meaningful line the worker printed, for one-line messages."""
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "no output"
        useful = [line.strip() for line in lines if line.strip() and not line.startswith("=")]
        return useful[-1][:300] if useful else "no output"

    def quit(self) -> None:
        """End the session politely (fixtures torn down), then make sure it is gone."""
        if self.alive:
            with contextlib.suppress(ChannelClosed):
                self.channel.send({"cmd": "quit"})
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(QUIT_TIMEOUT_S)
        self.kill()

    def kill(self) -> None:
        """Stop the worker and anything it started (its own process group)."""
        self.alive = False
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(5.0)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.channel.close()


def collected(worker: WorkerProcess) -> dict[str, Any]:
    """Wait for a new worker's collection report."""
    return worker.expect("collected")
