"""The 1-slot mailbox: the worker always gets the newest frame, and what it
never saw is counted as dropped."""

from __future__ import annotations

import threading
import time

from streaming.mailbox import Mailbox


def test_newer_item_replaces_unread_one_and_counts_a_drop() -> None:
    box: Mailbox[int] = Mailbox()
    assert box.put(1) is False
    assert box.put(2) is True
    assert box.put(3) is True
    assert box.get(timeout=0) == 3
    assert box.dropped == 2
    assert box.get(timeout=0) is None


def test_slow_consumer_sees_only_fresh_items_across_threads() -> None:
    box: Mailbox[int] = Mailbox()
    seen: list[int] = []

    def consume() -> None:
        while (item := box.get(timeout=1.0)) is not None:
            seen.append(item)
            time.sleep(0.01)                      # slower than the producer

    worker = threading.Thread(target=consume)
    worker.start()
    for i in range(200):
        box.put(i)
        time.sleep(0.001)
    worker.join()
    assert seen == sorted(seen)                   # never goes back in time
    assert seen[-1] == 199                        # the newest one is delivered
    assert box.dropped == 200 - len(seen)         # everything else is counted


def test_wake_and_close_release_a_waiting_get() -> None:
    box: Mailbox[int] = Mailbox()
    results: list[int | None] = []
    worker = threading.Thread(target=lambda: results.append(box.get(timeout=10)))
    worker.start()
    time.sleep(0.05)
    box.wake()
    worker.join(timeout=2)
    assert results == [None] and not worker.is_alive()
    box.close()
    assert box.get(timeout=10) is None and box.closed
