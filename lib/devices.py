"""The device every stage runs on unless told otherwise, chosen at run time so that one notebook runs on CPU and CUDA;
and the machine's CPUs: the time they spend busy, and how many of them a thread pool may take now."""

import os
import resource
import time
from contextlib import contextmanager
from pathlib import Path

import torch


def default_device() -> torch.device:
    """CUDA when a device is available at run time, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def own_cpu_seconds() -> float:
    """The CPU time this process has used so far, user and system, all its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_cpu_seconds(stat: str = "/proc/stat") -> tuple[float, int] | None:
    """The CPU time every process of the machine has used so far (all states but idle and I/O wait, stolen time
    included) and the machine's CPUs, from Linux's `stat`; None without one."""
    try:
        lines = Path(stat).read_text().splitlines()
    except OSError:
        return None
    ticks = [int(value) for value in lines[0].split()[1:]]
    idle = ticks[3] + ticks[4]
    cpus = sum(1 for line in lines if line.startswith("cpu") and line[3:4].isdigit())
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK"), cpus


@contextmanager
def cpu_load():
    """Measure the CPU load of the block: the dict it yields gets the `cpu_seconds` this process used and the
    `others_seconds` that other processes used per CPU of the machine; it stays empty where the machine does not tell
    (machine_cpu_seconds)."""
    load, own, machine = {}, own_cpu_seconds(), machine_cpu_seconds()
    yield load
    if machine is not None:
        used, (busy, cpus) = own_cpu_seconds() - own, machine_cpu_seconds()
        load |= {"cpu_seconds": used, "others_seconds": max(busy - machine[0] - used, 0.0) / cpus}


def free_cpus(seconds: float = 0.1) -> int:
    """The CPUs a thread pool of this process may take now: those of its affinity, less the CPUs that other processes
    keep busy over `seconds` (at least one; all of its affinity where the machine does not tell). A pool with threads
    beyond the free CPUs waits at every step for its threads that are not running (LightGBM's threads spin there)."""
    allowed = len(os.sched_getaffinity(0))
    machine = machine_cpu_seconds() if allowed > 1 else None
    if machine is None:
        return allowed
    with cpu_load() as load:
        time.sleep(seconds)
    return max(1, min(allowed, round(machine[1] * (1 - load["others_seconds"] / seconds))))
