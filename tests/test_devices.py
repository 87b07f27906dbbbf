"""lib.devices: the machine's CPU time from Linux's /proc/stat, and the CPUs a thread pool may take now."""

import multiprocessing
import os

import pytest

from lib.devices import free_cpus, machine_cpu_seconds


def test_the_machines_cpu_time_counts_every_state_but_idle_and_io_wait(tmp_path):
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text(
        "cpu  100 2 30 500 7 1 4 6 50 0\ncpu0 50 1 15 250 3 0 2 3 25 0\ncpu1 50 1 15 250 4 1 2 3 25 0\nintr 1\n"
    )
    busy, cpus = machine_cpu_seconds(stat)
    assert cpus == 2 and busy == pytest.approx((100 + 2 + 30 + 1 + 4 + 6) / os.sysconf("SC_CLK_TCK"))
    assert machine_cpu_seconds(tmp_path / "missing") is None


def spin_until(started, stop) -> None:
    started.put(os.getpid())
    while not stop.is_set():
        pass


def test_free_cpus_are_within_the_affinity_and_one_when_every_cpu_is_busy():
    allowed = len(os.sched_getaffinity(0))
    assert 1 <= free_cpus() <= allowed
    context = multiprocessing.get_context("spawn")
    started, stop = context.Queue(), context.Event()
    busy = [context.Process(target=spin_until, args=(started, stop)) for _ in range(machine_cpu_seconds()[1])]
    for process in busy:
        process.start()
    for _ in busy:
        started.get(timeout=60)
    try:
        assert free_cpus(seconds=0.5) == 1, "every CPU is kept busy by another process"
    finally:
        stop.set()
        for process in busy:
            process.join()


def test_free_cpus_without_proc_stat_are_the_affinity(monkeypatch):
    monkeypatch.setattr("lib.devices.machine_cpu_seconds", lambda: None)
    assert free_cpus() == len(os.sched_getaffinity(0))
