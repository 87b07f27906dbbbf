"""lib.inference.stopwatch: stages named by phase with their rerun rows, and the products a stage records."""

import numpy as np
import scipy.sparse as sp

from lib.data.competition import HIDDEN_TEST_ROWS
from lib.inference.stopwatch import Stopwatch, scan_flops, sparse_products


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
