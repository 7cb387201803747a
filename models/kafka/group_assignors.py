"""The classic protocol's client-side assignors, as Kafka's ConsumerPartitionAssignor
implementations compute them: range, round-robin, and sticky / cooperative-sticky (balanced,
keeping previous owners). group.py decides when to use them.
"""

from __future__ import annotations


def assign(
    strategy: str, partitions: list[int], members: list[str], previous: dict[int, str | None]
) -> dict[int, str]:
    """Partition -> member name, as Kafka's assignors compute it (members sorted by id)."""
    members = sorted(members)
    m, n = len(members), len(partitions)
    out: dict[int, str] = {}
    if not m:
        return out
    if strategy == "range":
        # RangeAssignor: consecutive ranges; the first n % m members get one more
        per, extra = divmod(n, m)
        start = 0
        for i, name in enumerate(members):
            count = per + (1 if i < extra else 0)
            for p in partitions[start : start + count]:
                out[p] = name
            start += count
        return out
    if strategy == "roundrobin":
        for i, p in enumerate(partitions):
            out[p] = members[i % m]
        return out
    # sticky / cooperative-sticky: balanced (at most ceil(n/m) each), keeping previous owners
    cap = -(-n // m)
    load = dict.fromkeys(members, 0)
    orphans: list[int] = []
    for p in partitions:
        owner = previous.get(p)
        if owner in load and load[owner] < cap:
            out[p] = owner
            load[owner] += 1
        else:
            orphans.append(p)
    floor = n // m
    # members below the floor take orphans first; then the least loaded
    for p in orphans:
        name = min(members, key=lambda k: (load[k] >= floor, load[k], k))
        out[p] = name
        load[name] += 1
    return out
