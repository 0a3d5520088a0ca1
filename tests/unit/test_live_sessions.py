"""Live sessions end when their token is revoked (announced through the store's
doorbell, across processes) or expires."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import trio
import trio.testing

from hoopd.identity.base import Identity
from hoopd.live_sessions import LiveSessions, end_sessions_on_revocation
from hoopd.revocation_bus import RevocationDoorbell, announce

ALICE = Identity("alice", ("dev",), "gt:parent")
CHILD = Identity("alice", ("dev",), "gt:child", ("ci-job",), lineage=("gt:parent",))
BOB = Identity("bob", (), "gt:bob")


class Revoked:
    """The store's answer, as a set of revoked token ids."""

    def __init__(self) -> None:
        self.ids: set[str] = set()

    def revocation_reason(self, identity: Identity) -> str | None:
        hit = self.ids & {identity.token_id, *identity.lineage}
        return f"token {min(hit)} was revoked" if hit else None


async def test_revoking_a_parent_ends_its_own_and_its_childs_sessions_only(
    tmp_path: Path,
) -> None:
    live, revoked = LiveSessions(), Revoked()
    outcome: dict[str, str | None] = {}

    async def session(name: str, identity: Identity) -> None:
        with live.track(name, identity) as tracked:
            await trio.sleep_forever()
        outcome[name] = tracked.ended.message if tracked.ended else None

    async with trio.open_nursery() as nursery:
        await nursery.start(end_sessions_on_revocation, tmp_path, live, revoked)
        nursery.start_soon(session, "s-alice", ALICE)
        nursery.start_soon(session, "s-child", CHILD)
        nursery.start_soon(session, "s-bob", BOB)
        await trio.sleep(0.05)
        revoked.ids.add("gt:parent")
        started = trio.current_time()
        # Announced by another process, as `hoopd revoke` does.
        code = f"from hoopd.revocation_bus import announce; announce({str(tmp_path)!r})"
        await trio.to_thread.run_sync(
            lambda: subprocess.run([sys.executable, "-c", code], check=True)
        )
        with trio.fail_after(5):
            while len(outcome) < 2:
                await trio.sleep(0.01)
        assert trio.current_time() - started < 5
        assert set(outcome) == {"s-alice", "s-child"}
        assert outcome["s-child"] == "session ended because token gt:parent was revoked"
        assert len(live) == 1  # bob's session goes on
        nursery.cancel_scope.cancel()


async def test_the_doorbell_ignores_other_files_in_the_store(tmp_path: Path) -> None:
    doorbell = RevocationDoorbell(tmp_path)
    try:
        (tmp_path / "approvals.db").write_bytes(b"unrelated write")
        with trio.move_on_after(0.3) as waited:
            await doorbell.wait()
        assert waited.cancelled_caught
        announce(tmp_path)
        with trio.fail_after(2):
            await doorbell.wait()
    finally:
        doorbell.close()


def test_announce_never_raises_when_the_store_is_gone(tmp_path: Path) -> None:
    announce(tmp_path / "missing")  # logged; a later connection still checks the store


async def test_a_session_ends_when_its_token_expires(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wall = [1000.0]
    live = LiveSessions(wall_clock=lambda: wall[0])
    expiring = Identity("alice", (), "gt:short", expires_at=1030.0)
    started = trio.current_time()
    with live.track("s", expiring) as tracked:
        await trio.sleep_forever()
    assert tracked.ended is not None and tracked.ended.cause == "expired"
    assert 29.9 < trio.current_time() - started < 30.1


async def test_expiry_can_be_switched_off(autojump_clock: trio.testing.MockClock) -> None:
    live = LiveSessions(wall_clock=lambda: 1000.0)
    live.end_at_expiry = False
    with trio.move_on_after(60):
        with live.track("s", Identity("alice", (), "gt:short", expires_at=1030.0)) as tracked:
            await trio.sleep_forever()
    assert tracked.ended is None


def test_a_failing_store_lookup_is_counted_so_it_is_retried() -> None:
    class Broken:
        def revocation_reason(self, identity: Identity) -> str | None:
            raise RuntimeError("database is locked")

    live = LiveSessions()

    async def main() -> None:
        with live.track("s", ALICE) as tracked:
            assert live.end_revoked(Broken()) == (0, 1)
            assert tracked.ended is None

    trio.run(main)


async def test_a_store_busy_at_the_announcement_is_asked_again(tmp_path: Path) -> None:
    class BusyOnce:
        calls = 0

        def revocation_reason(self, identity: Identity) -> str | None:
            self.calls += 1
            if self.calls == 1:
                raise RuntimeError("database is locked")
            return "token gt:parent was revoked"

    live, source = LiveSessions(), BusyOnce()
    async with trio.open_nursery() as nursery:
        await nursery.start(end_sessions_on_revocation, tmp_path, live, source)
        with trio.fail_after(5):
            with live.track("s", CHILD) as tracked:
                announce(tmp_path)
                await trio.sleep_forever()
        assert tracked.ended is not None and source.calls == 2
        nursery.cancel_scope.cancel()
