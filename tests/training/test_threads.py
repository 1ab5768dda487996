"""The thread governor: intra-op threads follow the cores other processes leave free."""

from __future__ import annotations

import pytest
import torch

from sweettok.training.loop import LoopConfig
from sweettok.training.threads import ThreadGovernor, cpu_busy_seconds
from sweettok.typed_params import ParamError


class Machine:
    """A fake 2-core machine: wall clock, machine-wide busy CPU seconds, this process's CPU seconds."""

    def __init__(self):
        self.now, self.busy, self.own = 0.0, 0.0, 0.0

    def run(self, seconds: float, own_cores: float, other_cores: float):
        self.now += seconds
        self.own += own_cores * seconds
        self.busy += (own_cores + other_cores) * seconds


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _governor(m: Machine, max_threads: int = 2, confirm: int = 1) -> ThreadGovernor:
    gov = ThreadGovernor(max_threads, interval_s=2.0, confirm=confirm, busy_reader=lambda: m.busy,
                         own_reader=lambda: m.own, clock=lambda: m.now)
    gov.cores = 2
    return gov


def test_one_busy_process_takes_a_thread_away_and_gives_it_back(restore_threads):
    m = Machine()
    gov = _governor(m)
    m.run(3.0, own_cores=2.0, other_cores=0.0)
    assert gov.tick() == 2
    # a busy process arrives: we get ~1.4 cores, it gets ~0.6
    m.run(3.0, own_cores=1.4, other_cores=0.6)
    assert gov.tick() == 1 and torch.get_num_threads() == 1
    assert gov.others == pytest.approx(0.6)
    # with one thread we use 1 core, it uses the other: stay at one
    m.run(3.0, own_cores=1.0, other_cores=1.0)
    assert gov.tick() == 1
    # it ends: the core is free again
    m.run(3.0, own_cores=1.0, other_cores=0.0)
    assert gov.tick() == 2 and torch.get_num_threads() == 2
    assert gov.changes == 2


def test_default_waits_for_two_measurements_so_a_blip_changes_nothing(restore_threads):
    m = Machine()
    gov = ThreadGovernor(2, interval_s=2.0, busy_reader=lambda: m.busy, own_reader=lambda: m.own,
                         clock=lambda: m.now)
    gov.cores = 2
    assert gov.confirm == 2
    # one interval with another process at 0.36 of a core (what a make run saw for 2 s), then quiet
    m.run(2.0, own_cores=1.64, other_cores=0.36)
    assert gov.tick() == 2
    m.run(2.0, own_cores=2.0, other_cores=0.0)
    assert gov.tick() == 2 and gov.changes == 0
    # a lasting competitor: the second measurement in a row takes the thread away
    m.run(2.0, own_cores=1.4, other_cores=0.6)
    assert gov.tick() == 2
    m.run(2.0, own_cores=1.4, other_cores=0.6)
    assert gov.tick() == 1 and torch.get_num_threads() == 1
    # load that alternates never settles on a new count: the pool stays
    for others in (0.0, 1.0, 0.0, 1.0):
        m.run(2.0, own_cores=2.0 - others, other_cores=others)
        assert gov.tick() == 1
    # the competitor ends: back to two threads at the second quiet measurement
    m.run(2.0, own_cores=1.0, other_cores=0.0)
    assert gov.tick() == 1
    m.run(2.0, own_cores=1.0, other_cores=0.0)
    assert gov.tick() == 2 and torch.get_num_threads() == 2 and gov.changes == 2


def test_light_background_load_keeps_both_threads(restore_threads):
    m = Machine()
    gov = _governor(m)
    m.run(3.0, own_cores=1.85, other_cores=0.15)
    assert gov.tick() == 2


def test_no_measurement_before_the_interval(restore_threads):
    m = Machine()
    gov = _governor(m)
    m.run(1.0, own_cores=1.0, other_cores=1.0)
    assert gov.tick() == 2  # 1 s < interval: not measured yet
    m.run(1.5, own_cores=1.0, other_cores=1.0)
    assert gov.tick() == 1


def test_one_thread_runs_and_missing_proc_stat_leave_the_pool_alone(restore_threads):
    m = Machine()
    single = _governor(m, max_threads=1)
    blind = ThreadGovernor(2, busy_reader=lambda: None, own_reader=lambda: 0.0, clock=lambda: m.now)
    m.run(5.0, own_cores=1.0, other_cores=1.0)
    assert not single.active and single.tick() == 1
    assert not blind.active and blind.tick() == 2


def test_proc_stat_parsing_counts_only_allowed_cpus(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  10 0 10 100 5 0 0 0 0 0\n"
                    "cpu0 100 0 50 1000 20 0 5 0 0 0\n"
                    "cpu1 200 0 100 1000 20 0 10 0 0 0\n"
                    "intr 1 2 3\n")
    hz = __import__("os").sysconf("SC_CLK_TCK")
    assert cpu_busy_seconds({0}, stat) == pytest.approx(155 / hz)
    assert cpu_busy_seconds({0, 1}, stat) == pytest.approx(465 / hz)
    assert cpu_busy_seconds({0}, tmp_path / "missing") is None


@pytest.mark.parametrize("bad", [0, -1, "two", True, 1.5])
def test_threads_setting_is_checked(bad):
    with pytest.raises(ParamError, match="threads"):
        LoopConfig(total_steps=1, threads=bad)
