"""A broker's request-handling capacity: network threads, the request queue, I/O threads.

Kafka's SocketServer reads a request on one of `num.network.threads`, puts it on the request
queue (at most `queued.max.requests`; when full the network threads stop reading, so requests
wait in the socket), and one of `num.io.threads` handles it (KafkaRequestHandler). Without this a
broker has unlimited throughput; with it, per-request and per-byte CPU costs make a broker
saturate, batching (linger.ms, batch.size) pays off, and request queue time grows under load.

Threads are modelled as "free at" times in two heaps and requests take the earliest free thread
in arrival order, so the cost is a few heap operations per request and no simulation events.
"""

from __future__ import annotations

from collections import deque
from heapq import heapreplace

# A network thread only reads and parses a request; the I/O thread does the work.
NETWORK_SHARE = 0.25


class Capacity:
    """Network threads -> request queue -> I/O threads, as arithmetic on free times."""

    def __init__(
        self,
        network_threads: int,
        io_threads: int,
        queued_max: int,
        request_cpu_ms: float,
        cpu_ms_per_mb: float,
    ):
        self.net_free = [float("-inf")] * network_threads
        self.io_free = [float("-inf")] * io_threads
        self.queued_max = queued_max
        self.queue_starts: deque[float] = deque(maxlen=queued_max)
        self.request_ms = request_cpu_ms
        self.network_ms = request_cpu_ms * NETWORK_SHARE
        self.ms_per_byte = cpu_ms_per_mb / 1e6
        self.slow_factor = 1.0
        self.latest = float("-inf")  # the latest time the threads were given work at
        # metrics since the last sample
        self.queue_ms_sum = 0.0
        self.requests = 0
        self.bytes_in = 0.0
        self.bytes_out = 0.0
        self.produce_requests = 0

    def reset(self) -> None:
        """A restarted broker starts with idle threads and an empty queue."""
        self.net_free = [float("-inf")] * len(self.net_free)
        self.io_free = [float("-inf")] * len(self.io_free)
        self.queue_starts.clear()
        self.latest = float("-inf")

    def handle(self, t: float, nbytes: float) -> tuple[float, float]:
        """A request arriving at `t` carrying `nbytes` of records: (done time, time it waited)."""
        if t > self.latest:
            self.latest = t
        net = self.net_free
        start = net[0] if net[0] > t else t
        network_ms = self.network_ms
        end_net = start + network_ms
        heapreplace(net, end_net)
        starts = self.queue_starts
        if len(starts) == self.queued_max and starts[0] > end_net:
            end_net = starts[0]  # queue full: the network thread cannot enqueue before then
        io = self.io_free
        start_io = io[0] if io[0] > end_net else end_net
        done = start_io + self.request_ms + nbytes * self.ms_per_byte
        heapreplace(io, done)
        starts.append(start_io)
        self.queue_ms_sum += start_io - end_net
        self.requests += 1
        return done, start_io - t - network_ms

    def send(self, t: float, nbytes: float) -> float:
        """A response of `nbytes` written by a network thread from `t`: when it leaves.

        A response decided late (a consumer's parked fetch is answered lazily, when the high
        watermark next moves) is dated before work the threads were given since: the heaps
        only know when each thread is next free, not what it did at `t`, so such a response
        takes no thread (it does not wait, and delays nothing)."""
        self.bytes_out += nbytes
        cost = nbytes * self.ms_per_byte
        if t < self.latest:
            return t + cost
        self.latest = t
        net = self.net_free
        start = net[0] if net[0] > t else t
        done = start + cost
        heapreplace(net, done)
        return done

    def sample(self) -> tuple[float, float, float, int]:
        """(mean queue time, bytes in, bytes out, produce requests) since the last sample."""
        mean = self.queue_ms_sum / self.requests if self.requests else 0.0
        out = (mean, self.bytes_in, self.bytes_out, self.produce_requests)
        self.queue_ms_sum = 0.0
        self.requests = 0
        self.bytes_in = 0.0
        self.bytes_out = 0.0
        self.produce_requests = 0
        return out
