"""lib.inference.stopwatch: stages named by phase with their rerun rows, the products a stage records, and the load
of other processes taken out of its seconds."""

import multiprocessing
import os
import time

import numpy as np
import pytest
import scipy.sparse as sp

from lib.data.competition import HIDDEN_TEST_ROWS
from lib.devices import machine_cpu_seconds
from lib.inference.stopwatch import Stage, Stopwatch, quiet, scan_flops, sparse_products


def test_stopwatch_names_stages_by_phase_and_gives_their_rerun_rows():
    stopwatch = Stopwatch()
    with stopwatch.phase("evaluation", target_rows=6850):
        with stopwatch.stage("model: embeddings", rows=400, kind="forward", parts=["resnet50@224"]):
            pass
    with stopwatch.stage("matching rules", rows=30):
        pass
    assert [(s.name, s.kind, s.target_rows) for s in stopwatch.stages] == [
        ("evaluation: model: embeddings", "forward", 6850),
        ("test: matching rules", "host", HIDDEN_TEST_ROWS),
    ]
    assert stopwatch.stages[0].parts == ["resnet50@224"]


def test_a_scan_counts_its_products_and_a_sparse_search_each_columns_nonzeros_squared():
    assert scan_flops(1000, 500) == 1000 * 1000 * 500
    x = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 0], [1, 0, 1]], dtype=np.float32))
    assert sparse_products(x) == 3**2 + 1**2 + 1**2  # each column's nonzeros squared
    assert sparse_products(x) == (x @ x.T).sum()  # every product of x @ x.T, here all ones


@pytest.mark.parametrize(
    "seconds, cpu_seconds, others_seconds, expected",
    [
        (10.0, 10.0, 0.0, 10.0),  # one thread, alone
        (10.0, 20.0, 0.0, 10.0),  # two threads, alone
        (10.0, 0.5, 0.0, 10.0),  # waiting (on a device, a file), alone: its wall time
        (10.0, 5.0, 7.5, 5.0),  # one thread sharing a core with others: its CPU time
        (10.0, 6.0, 7.0, 6.0),  # on 2 CPUs: its 6 s beside the others' 14 s
        (10.0, 4.0, 8.0, 4.0),  # its 4 s beside the others' 16 s
        (10.0, 14.0, 3.0, 10.0),  # using more than a CPU beside a light load: no more than its wall time
        (10.0, None, 0.0, 10.0),  # not measured
    ],
)
def test_a_stages_own_work_is_its_wall_time_less_the_others_load(seconds, cpu_seconds, others_seconds, expected):
    assert quiet(seconds, cpu_seconds, others_seconds) == pytest.approx(expected)
    assert quiet(seconds, cpu_seconds, others_seconds) <= seconds


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_a_stage_beside_busy_processes_records_their_load_and_its_own_cpu_time():
    stopwatch = Stopwatch()
    cpus = machine_cpu_seconds()[1]
    with stopwatch.stage("matching rules", rows=10):
        others = [multiprocessing.get_context("spawn").Process(target=spin, args=(1.0,)) for _ in range(cpus)]
        for other in others:
            other.start()
        spin(1.0)
        for other in others:
            other.join()
        children = os.times()
    stage: Stage = stopwatch.stages[0]
    children_cpu = children.children_user + children.children_system  # the busy processes' CPU time, measured apart
    assert stage.others_seconds * cpus >= 0.9 * children_cpu - 0.05
    assert stage.cpu_seconds <= stage.seconds + 0.05, "one thread's CPU time within its wall time"
    assert stage.quiet_seconds < stage.seconds, "the others' load is taken out"
