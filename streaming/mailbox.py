"""A one-slot mailbox between the event loop and a session's worker thread.

Latency before throughput: when the pipeline is slower than the camera, the
frame it has not read yet is replaced by the newer one (and counted as dropped),
so the worker always starts on the freshest input and nothing queues up. This is
the "drain to the newest frame" rule from WEBRTC-NOTES (50 ms fake model: FIFO
p50 894 ms and climbing, newest-frame p50 158 ms) and fastrtc's stale-frame skip.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class Mailbox(Generic[T]):
    """Holds at most one item. `put` never blocks; `get` blocks until an item, a
    `wake()`, a timeout or `close()`. Safe to use from any thread."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._full = False
        self._woken = False
        self._closed = False
        self.put_count = 0
        self.dropped = 0

    def put(self, item: T) -> bool:
        """Store `item`, replacing an unread one. Returns True if one was replaced."""
        with self._cond:
            replaced = self._full
            if replaced:
                self.dropped += 1
            self._item, self._full = item, True
            self.put_count += 1
            self._cond.notify()
            return replaced

    def get(self, timeout: float | None = None) -> T | None:
        """The newest unread item, or None on timeout, `wake()` or `close()`."""
        with self._cond:
            if not (self._full or self._woken or self._closed):
                self._cond.wait(timeout)
            self._woken = False
            if not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            return item

    def wake(self) -> None:
        """Make a waiting `get` return (with the item if there is one)."""
        with self._cond:
            self._woken = True
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
