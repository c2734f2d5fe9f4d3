"""The bounded hand-off between a session's motion thread and its model thread.

It holds at most one chunk (K) of prepared inputs. The motion thread `put`s one
at a time and never blocks: when the chunk is full because the model is still busy
with the previous one, the oldest prepared input is dropped (and counted), so the
next chunk the model takes is always made of the K newest inputs and nothing
queues up behind the model (ARCHITECTURE.md: latency first). The model thread
`take`s a whole chunk at once.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class HandOff(Generic[T]):
    """At most `capacity` items, oldest dropped first. Safe to use from any thread."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._items: deque[T] = deque()
        self._cond = threading.Condition()
        self._woken = False
        self._closed = False
        self.put_count = 0
        self.dropped = 0

    def put(self, item: T) -> T | None:
        """Add `item`; returns the oldest item if it had to be dropped to make room."""
        with self._cond:
            dropped = None
            if len(self._items) >= self.capacity:
                dropped = self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self.put_count += 1
            if len(self._items) >= self.capacity:
                self._cond.notify()
            return dropped

    def take(self, timeout: float | None = None) -> list[T]:
        """A full chunk (`capacity` items, oldest first), or [] on timeout, `wake()`
        or `close()`. A partial chunk stays where it is, to be completed."""
        with self._cond:
            if not (len(self._items) >= self.capacity or self._woken or self._closed):
                self._cond.wait(timeout)
            self._woken = False
            if len(self._items) < self.capacity:
                return []
            items = list(self._items)
            self._items.clear()
            return items

    def wake(self) -> None:
        """Make a waiting `take` return (with a chunk if one is full)."""
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

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
