"""Calling a benchmarked function many times in a row, at the least cost per call.

Inside a round, the loop and the call are part of what the window measures. A
``functools.partial`` called from ``itertools.repeat`` costs ~20 ns a call, and its
function runs in a nested C-level call; in some processes (it depends on the memory
layout the process happens to get) that makes the function's own body ~1-3 % slower
(``benchmarks/fixture_overhead.py`` measured +0.98 % at 10 µs, worst process +1.30 %).
Calling ``fn(a)`` with the arguments bound once is a call CPython 3.11+ runs without
a nested C call, ~5 ns with the loop. So the arguments of a partial without keywords,
up to three of them, are unpacked once per loop, and every call is ``fn(a, b)`` as
the test wrote it.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable

__all__ = ["call_times"]

_repeat = itertools.repeat


def call_times(call: Callable[[], object], count: int) -> None:
    """``call()``, ``count`` times."""
    if type(call) is functools.partial and not call.keywords and len(call.args) <= 3:
        fn, args = call.func, call.args
        if not args:
            for _ in _repeat(None, count):
                fn()
        elif len(args) == 1:
            (a,) = args
            for _ in _repeat(None, count):
                fn(a)
        elif len(args) == 2:
            a, b = args
            for _ in _repeat(None, count):
                fn(a, b)
        else:
            a, b, c = args
            for _ in _repeat(None, count):
                fn(a, b, c)
        return
    for _ in _repeat(None, count):
        call()
