"""Intra-op threads that follow the cores other processes leave free.

PyTorch's CPU kernels run on an OpenMP pool of ``torch.get_num_threads()`` threads whose
workers spin-wait between parallel regions. Alone on a 2-core machine two threads are the
fastest choice; with one other busy process the two threads and the intruder share two
cores, every parallel region waits for a descheduled worker, and a training step of the base
profile became 3.7x (proxy) to ~20x (a whole `make run`) slower. One thread is then faster
than two (measured with ``sweettok bench threads``).

:class:`ThreadGovernor` measures, every ``interval_s`` seconds, how much CPU time other
processes took on the cores this process may run on (``/proc/stat`` minus this process and
its children) and sets the pool to the cores left free, between 1 and the thread count the
run started with, once ``confirm`` measurements in a row (2 by default: 4 s) agree on the new
count: a blip of a second or two (a shell command, a cron job) leaves the pool alone, so it
does not make an otherwise undisturbed run differ from a rerun. It changes nothing where
``/proc/stat`` is missing (not Linux), on CUDA runs, or when the run started with one thread.

Bit-exact reruns need the same thread count throughout (a reduction split over 2 threads
rounds differently from one over 1): pin ``loop.threads`` to a number for those.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch

__all__ = ["ThreadGovernor", "cpu_busy_seconds", "own_cpu_seconds"]

log = logging.getLogger(__name__)

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _allowed_cpus() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


def cpu_busy_seconds(cpus: set[int], stat: Path = Path("/proc/stat")) -> float | None:
    """Non-idle CPU seconds since boot summed over ``cpus`` (None where ``/proc/stat`` is unreadable)."""
    try:
        lines = stat.read_text().splitlines()
    except OSError:
        return None
    busy = 0
    for line in lines:
        name, _, rest = line.partition(" ")
        if not (name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus):
            continue
        values = [int(v) for v in rest.split()]
        # user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
        busy += sum(values[:8]) - values[3] - values[4]
    return busy / _TICK


def own_cpu_seconds() -> float:
    """CPU seconds of this process (all threads) and of its live child processes (data loader workers)."""
    total = time.process_time()
    for children in Path("/proc/self/task").glob("*/children"):
        try:
            pids = children.read_text().split()
        except OSError:
            continue
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            total += (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime
    return total


class ThreadGovernor:
    """Sets ``torch.set_num_threads`` to the cores other processes leave free; see the module docstring.

    Args:
        max_threads: the most threads to use (the pool size the run started with).
        interval_s: seconds between measurements.
        confirm: consecutive measurements that must want the same new thread count before the
            pool changes (1: change at the first).
        busy_reader, own_reader, clock: sources of machine-busy CPU seconds, own CPU seconds
            and wall time (injectable for tests).
    """

    def __init__(self, max_threads: int, interval_s: float = 2.0, confirm: int = 2,
                 busy_reader: Callable[[], float | None] | None = None,
                 own_reader: Callable[[], float] = own_cpu_seconds,
                 clock: Callable[[], float] = time.monotonic) -> None:
        cpus = _allowed_cpus()
        self.max_threads = max(1, int(max_threads))
        self.cores = len(cpus)
        self.interval_s = interval_s
        self.confirm = max(1, int(confirm))
        self._pending = (self.max_threads, 0)  # the count the last measurements wanted, and how many in a row
        self._busy = busy_reader or (lambda: cpu_busy_seconds(cpus))
        self._own = own_reader
        self._clock = clock
        self.threads = self.max_threads
        self.others = 0.0  # cores the other processes used over the last interval
        self.changes = 0
        first = self._busy()
        self.active = first is not None and self.max_threads > 1
        self._last = (self._clock(), first or 0.0, self._own())

    def tick(self) -> int:
        """Measure when an interval has passed and adjust the pool; returns the thread count in use."""
        if not self.active:
            return self.threads
        now = self._clock()
        if now - self._last[0] < self.interval_s:
            return self.threads
        busy, own = self._busy(), self._own()
        if busy is None:
            self.active = False
            return self.threads
        wall = now - self._last[0]
        self.others = max(0.0, ((busy - self._last[1]) - (own - self._last[2])) / wall)
        self._last = (now, busy, own)
        free = self.cores - self.others
        # a light background load (< 0.25 of a core left over) still leaves the core to us
        want = max(1, min(self.max_threads, int(free + 0.25)))
        self._pending = (want, self._pending[1] + 1 if self._pending[0] == want else 1)
        if want != self.threads and self._pending[1] >= self.confirm:
            log.info("other processes use %.2f of %d cores: %d -> %d intra-op threads", self.others, self.cores,
                     self.threads, want)
            torch.set_num_threads(want)
            self.threads = want
            self.changes += 1
        return self.threads

    def close(self) -> None:
        """Give the pool its starting size back."""
        if self.threads != self.max_threads:
            torch.set_num_threads(self.max_threads)
            self.threads = self.max_threads


def governor_for(setting: str | int, device: torch.device) -> ThreadGovernor | None:
    """``loop.threads``: ``"auto"`` -> a governor (CPU runs with more than one thread), a number ->
    that many threads, fixed (returns None)."""
    if setting == "auto":
        if device.type != "cpu":
            return None
        return ThreadGovernor(torch.get_num_threads())
    torch.set_num_threads(int(setting))
    return None
