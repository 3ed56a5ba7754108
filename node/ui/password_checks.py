"""Password checks on a thread of their own, a few at a time.

An argon2 check takes most of a second of CPU by design. Run on the database's threads,
twenty sign-ins sent at once by a stranger (within the per-address limit) held all four
of them: a signed-in page waited 9 s and the marketplace 3 s. Here they wait only for
each other, and past ``workers + waiting`` at once a sign-in is answered "busy" at once,
before it is counted as an attempt.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from node.ui.accounts import password_matches


class PasswordChecks:
    def __init__(self, workers: int = 1, waiting: int = 4) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="password")
        self._slots = workers + waiting
        self._held = 0

    def take(self) -> bool:
        """A place for one sign-in's check, if one is free; ``give_back`` it after."""
        if self._held >= self._slots:
            return False
        self._held += 1
        return True

    def give_back(self) -> None:
        self._held -= 1

    async def matches(self, stored: str, password: str) -> bool:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, password_matches, stored, password)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


PASSWORD_CHECKS = web.AppKey("password_checks", PasswordChecks)


def setup(app: web.Application) -> None:
    checks = PasswordChecks()
    app[PASSWORD_CHECKS] = checks

    async def close(_app: web.Application) -> None:
        checks.close()

    app.on_cleanup.append(close)
