"""What the parts of a consumer (fetching, processing, committing) share and call in each other.

`Consumer` (consumer.py) is assembled from `Fetching`, `Processing` and `Committing`; each part
reads the consumer's state declared here and calls methods another part defines, which are
declared here for the type checker only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from models.kafka.consumer_cursor import Cursor

if TYPE_CHECKING:
    from models.kafka.cluster import KafkaModel
    from models.kafka.config import ConsumerConfig
    from models.kafka.consumer import Consumer


class ConsumerPart:
    """Base of the parts of a consumer (mixed into `Consumer`)."""

    model: KafkaModel
    cfg: ConsumerConfig
    env: Any
    name: str
    state: str
    slowdown: float
    processing_ms: float
    cursors: dict[int, Cursor]
    busy_until: float
    channel_last: dict[str, float]

    if TYPE_CHECKING:
        # defined by Fetching
        def fetch(self, cursor: Cursor, send_ms: float) -> None: ...

        # defined by Processing
        def _process(self, cursor: Cursor, pieces: list[Any], log: Any, arrival: float) -> None: ...
        def flush(self, now: float) -> None: ...
        def _withdraw_cursor(self, cursor: Cursor) -> None: ...

        # defined by Committing
        def commit_offset(self, cursor: Cursor) -> tuple[int, int]: ...

    @property
    def consumer(self) -> Consumer:
        """This part as the whole consumer (what the group and the coordinator are given)."""
        return cast("Consumer", self)
