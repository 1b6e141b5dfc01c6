"""settle_heap freezes the start-up heap once per process and collects the youngest
generation less often (run in a child process: it changes the collector for good)."""

from __future__ import annotations

import subprocess
import sys

_CHILD = """
import gc
from ledgerlink.shared.runtime import YOUNG_GENERATION_THRESHOLD, settle_heap
assert gc.get_freeze_count() == 0
settle_heap()
frozen = gc.get_freeze_count()
assert frozen > 0, frozen
assert gc.get_threshold()[0] == YOUNG_GENERATION_THRESHOLD
kept = [[n] for n in range(1000)]
settle_heap()  # a second app in the same process freezes nothing more
assert gc.get_freeze_count() == frozen, (gc.get_freeze_count(), frozen)
print("ok")
"""


def test_settle_heap_freezes_once_and_raises_the_young_threshold() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
