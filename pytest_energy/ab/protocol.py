"""The line protocol between the A/B controller and its workers: one JSON object a line.

Each worker gets one end of a socket pair as an inherited file descriptor; the
test's own prints go to the worker's stdout and stderr (a log file), never onto
this channel, so nothing a test writes can be mistaken for a message and no pipe
fills up unread. Commands go controller -> worker (``{"cmd": ...}``), events
worker -> controller (``{"event": ...}``).
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

#: The environment variable that names the worker's end of the socket pair.
FD_ENV = "PYTEST_ENERGY_AB_FD"
#: The tree a worker measures (its import roots and the origin check).
TREE_ENV = "PYTEST_ENERGY_AB_TREE"
#: "base" or "head", for messages.
SIDE_ENV = "PYTEST_ENERGY_AB_SIDE"

Message = dict[str, Any]


class ChannelClosed(Exception):
    """The other end went away (a worker that crashed) or did not answer in time."""


class Channel:
    """JSON lines over a connected socket, with a timeout on every receive."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = b""

    @classmethod
    def inherited(cls) -> Channel:
        """The worker's end, from the descriptor its controller passed down."""
        return cls(socket.socket(fileno=int(os.environ[FD_ENV])))

    def send(self, message: Message) -> None:
        data = json.dumps(message, allow_nan=False).encode() + b"\n"
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise ChannelClosed(f"the other end went away ({exc.strerror or exc})") from None

    def receive(self, timeout: float | None = None) -> Message:
        """The next message; :class:`ChannelClosed` at end of stream or after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.001)
            self._sock.settimeout(left)
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                raise ChannelClosed(f"no answer within {timeout:.0f} s") from None
            except OSError as exc:
                raise ChannelClosed(f"the other end went away ({exc.strerror or exc})") from None
            if not chunk:
                raise ChannelClosed("the other end closed the channel")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        message = json.loads(line)
        if not isinstance(message, dict):
            raise ChannelClosed(f"not a protocol message: {line[:80]!r}")
        return message

    def close(self) -> None:
        self._sock.close()
