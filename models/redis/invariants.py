"""Redis state invariants, a pure function of the model's state (see docs/reliability.md).

- A replica's replication offset is <= its master's (INFO replication: `slave_repl_offset` <=
  `master_repl_offset`): a replica only ever applies a prefix of its master's stream. Checked
  for every replica in `model.replicas` (or `model.replication.replicas`) that has a `master`;
  the offsets are read as `repl_offset` / `slave_repl_offset` / `offset` on the replica and
  `master_repl_offset` / `repl_offset` / `offset` on the master.
- A stream's PEL holds only delivered, unacknowledged ids (XPENDING): for every consumer group
  of every stream in `model.streams` (or `model.store.streams`), each pending id is <= the
  group's `last_delivered_id`, was delivered at least once (`delivery_count` if the entry has
  one) and is not in the group's `acked` ids (if the group keeps them).
- The eviction index of an allkeys-* policy (`Memory.present`, key_index.py) marks exactly the
  keys whose value is present, on every server in `model.servers`.

The check reads attributes through getattr (the names above): `RedisModel.streams` gives the
current master's stream, whose `groups` view has the PEL and the last-delivered id, so it also
holds on a promoted replica after a failover and on a master restarted from its AOF.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from simulator.model import InvariantViolation


def check(model: Any) -> None:
    """Raise InvariantViolation at the first broken Redis invariant."""
    check_replica_offsets(model)
    check_stream_pels(model)
    check_eviction_index(model)


def check_eviction_index(model: Any) -> None:
    """The index eviction samples from (allkeys-* policies) marks exactly the keys that hold a
    value: it mirrors the dataset, so every write, delete, expiry, eviction, restart and
    migration must keep it in step."""
    now = model.env.now
    for server in getattr(model, "servers", {}).values():
        store = server.store
        index = store.memory.present
        if index is None:
            continue
        holds = store.live.value >= 0
        marked = index.mask()
        if not np.array_equal(marked, holds) or index.count != int(np.count_nonzero(holds)):
            wrong = np.flatnonzero(marked != holds)
            raise InvariantViolation(
                now,
                server.name,
                "the eviction index does not mirror the dataset",
                {"keys": wrong[:10].tolist(), "count": index.count, "holding": int(holds.sum())},
            )


def _first(obj: Any, names: Iterable[str]) -> Any:
    for name in names:
        value = getattr(obj, name, None)
        if value is not None:
            return value
    return None


def check_replica_offsets(model: Any) -> None:
    replication = getattr(model, "replication", None)
    if replication is None:
        return  # replicas = 0
    now = model.env.now
    master = replication.master
    master_offset = replication.position()  # master_repl_offset: the end of its journal
    for name, link in sorted(replication.links.items()):
        if link.server is master or link.epoch != replication.epoch:
            continue  # an offset in another master's journal (before a failover or a restart)
        if link.syncing_until > -np.inf:
            # a full resync in progress: the replica still serves its old dataset at its old
            # offset (replica-serve-stale-data) until the RDB is loaded (sync_done)
            continue
        if link.offset > master_offset:
            state = {
                "slave_repl_offset": link.offset,
                "master_repl_offset": master_offset,
                "master": master.name,
                "replication_epoch": replication.epoch,
            }
            raise InvariantViolation(now, name, "replica offset beyond its master's", state)


def _streams(model: Any) -> dict[str, Any]:
    streams = getattr(model, "streams", None)
    if streams is None:
        streams = getattr(getattr(model, "store", None), "streams", None)
    return dict(streams or {})


def _pending(group: Any) -> dict[Any, Any]:
    pel = _first(group, ("pel", "pending_entries", "pending"))
    if pel is None:
        return {}
    if isinstance(pel, dict):
        return pel
    return {entry_id: None for entry_id in pel}


def check_stream_pels(model: Any) -> None:
    now = model.env.now
    for stream_name, stream in sorted(_streams(model).items()):
        groups = getattr(stream, "groups", None) or {}
        for group_name, group in sorted(groups.items()):
            last = getattr(group, "last_delivered_id", None)
            acked = getattr(group, "acked", None)
            for entry_id, entry in _pending(group).items():
                problem = None
                if last is not None and entry_id > last:
                    problem = "a PEL entry beyond the group's last delivered id"
                elif acked is not None and entry_id in acked:
                    problem = "an acknowledged id is still pending"
                elif entry is not None and getattr(entry, "delivery_count", 1) < 1:
                    problem = "a pending id that was never delivered"
                if problem is not None:
                    state = {
                        "stream": stream_name,
                        "group": group_name,
                        "id": entry_id,
                        "last_delivered_id": last,
                    }
                    raise InvariantViolation(now, "redis", problem, state)
