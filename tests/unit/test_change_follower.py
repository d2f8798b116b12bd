"""Stopping a ChangeFollower: it ends even when a refresh swallows the cancellation meant to stop it (as
asyncio.wait_for can on Python 3.11 when its inner call finishes at the moment it is cancelled), which once held
a gateway's shutdown, and the CI run with it, forever."""

from __future__ import annotations

import asyncio

from gateway.change_follower import ChangeFollower


class SwallowingRefresh:
    """A refresh that, like a racing wait_for, lets one cancellation go unseen."""

    def __init__(self) -> None:
        self.calls = 0
        self.swallowed = 0
        self.inside = asyncio.Event()

    async def __call__(self) -> bool:
        self.calls += 1
        self.inside.set()
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            self.swallowed += 1  # and returns normally, as if the read had won the race
        return True


async def test_close_ends_the_follower_even_when_a_refresh_swallows_the_cancellation() -> None:
    refresh = SwallowingRefresh()
    follower = ChangeFollower(refresh, None, "test", interval=0.01)
    follower.start()
    await refresh.inside.wait()
    async with asyncio.timeout(5):  # without the closing flag this waits for ever
        await follower.close()
    assert refresh.swallowed == 1


async def test_the_follower_refreshes_every_interval_until_closed() -> None:
    refresh = SwallowingRefresh()
    follower = ChangeFollower(refresh, None, "test", interval=0.01)
    follower.start()
    while refresh.calls < 3:
        await asyncio.sleep(0.01)
    await follower.close()
    calls = refresh.calls
    await asyncio.sleep(0.1)
    assert refresh.calls == calls
