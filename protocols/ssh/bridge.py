"""Typed crossings between trio (the gateway) and asyncio (asyncssh).

trio-asyncio ships no type information; this module is the one place that says
what its adapters do, so the rest of the package stays checked.

Guarantees: :func:`to_trio` runs an asyncio coroutine function from trio code (a
trio cancellation cancels the asyncio task); :func:`to_asyncio` runs a trio async
function from asyncio code (cancelling the awaiting asyncio task cancels the trio
task). Both need a loop opened by :func:`open_loop` in the calling trio task or
an ancestor.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any, ParamSpec, TypeVar, cast

import trio_asyncio  # type: ignore[import-untyped]

P = ParamSpec("P")
R = TypeVar("R")


def open_loop() -> AbstractAsyncContextManager[object]:
    """An asyncio loop running on trio for as long as the context is open."""
    return cast(AbstractAsyncContextManager[object], trio_asyncio.open_loop())


def to_trio(function: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Awaitable[R]]:
    """``function`` (asyncio), callable and awaitable from trio."""
    return cast(Callable[P, Awaitable[R]], trio_asyncio.aio_as_trio(function))


def to_asyncio(function: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """``function`` (trio), callable and awaitable from asyncio."""
    return cast(Callable[P, Awaitable[R]], trio_asyncio.trio_as_aio(function))
