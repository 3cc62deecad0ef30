"""The built-in processor's memory of routed dialogs: bounded in entries and idle time."""

from __future__ import annotations

from edgeport.builtin.dialogs import (
    MAX_HOPS_PER_DIALOG,
    DialogTargets,
    RecentTable,
    TrustedForwards,
)
from tests.builtin.test_builtin_routing import FakeClock


def test_recent_table_drops_the_least_recently_used_past_its_bound() -> None:
    table: RecentTable[str, int] = RecentTable(FakeClock(), max_entries=3, idle_seconds=60)
    for index, key in enumerate("abc"):
        table.put(key, index)
    assert table.get("a") == 0  # used: now the most recent
    table.put("d", 3)
    assert len(table) == 3
    assert table.get("b") is None
    assert [table.get(key) for key in "acd"] == [0, 2, 3]


def test_recent_table_forgets_what_was_not_used_for_its_idle_time() -> None:
    clock = FakeClock()
    table: RecentTable[str, int] = RecentTable(clock, max_entries=10, idle_seconds=60)
    table.put("kept", 1)
    table.put("idle", 2)
    clock.now += 59
    assert table.get("kept") == 1  # use renews it
    clock.now += 59
    assert table.get("idle") is None
    assert table.get("kept") == 1
    assert len(table) == 1


def test_dialog_targets_belong_to_their_call_id_and_are_bounded_per_dialog() -> None:
    targets = DialogTargets(FakeClock(), max_dialogs=2)
    hops = [(f"192.0.2.{n}", 5060) for n in range(MAX_HOPS_PER_DIALOG + 2)]
    targets.remember("call-1", hops)
    assert not targets.allows("call-1", hops[0])  # the oldest went
    assert targets.allows("call-1", hops[-1])
    assert not targets.allows("call-2", hops[-1])
    assert not targets.allows("", hops[-1])
    targets.remember("call-2", [hops[0]])
    targets.remember("call-3", [hops[0]])
    assert len(targets) == 2
    assert not targets.allows("call-1", hops[-1])


def test_trusted_forwards_are_bounded_and_expire() -> None:
    clock = FakeClock()
    forwards = TrustedForwards(clock, max_entries=2, idle_seconds=300)
    forwards.record(("c", 1, "INVITE"), "198.51.100.50")
    forwards.record(("c", 2, "INVITE"), "198.51.100.50")
    forwards.record(("c", 3, "INVITE"), "198.51.100.50")
    assert forwards.host_for(("c", 1, "INVITE")) is None
    assert forwards.host_for(("c", 3, "INVITE")) == "198.51.100.50"
    clock.now += 301
    assert forwards.host_for(("c", 3, "INVITE")) is None
