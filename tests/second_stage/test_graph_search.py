"""lib.second_stage.graph_search: each step kept exactly where it gains, and the F1 it reports is what the config it
returns scores through lib.second_stage.graph.apply."""

import json

import numpy as np
import pytest

from lib import schema
from lib.matching.ensemble import MIN_GAIN
from lib.second_stage import graph, graph_search
from tests.second_stage.test_graph import config, metric, scored
from tools.bench.synthetic import synthetic_graph


def test_cluster_f1_is_the_mean_set_f1_of_clusters():
    cluster = np.array([0, 0, 7, 7, 7, 2, 2, 5, 5, 5, 9])
    labels = np.array(["a", "a", "a", "b", "b", "b", "c", "d", "d", "e", "e"])
    n = len(labels)
    predicted = [{j for j in range(n) if cluster[j] == cluster[i]} for i in range(n)]
    actual = [{j for j in range(n) if labels[j] == labels[i]} for i in range(n)]
    naive = np.mean([2 * len(p & a) / (len(p) + len(a)) for p, a in zip(predicted, actual)])
    assert graph_search.cluster_f1(cluster, labels) == pytest.approx(naive)
    doubled = [2 * len(p & a) / (len(p & a) + 2 * len(p - a) + len(a)) for p, a in zip(predicted, actual)]
    assert graph_search.cluster_f1(cluster, labels, lambda false: 2 * false) == pytest.approx(np.mean(doubled))


def kept_steps(steps: list[dict]) -> list[str]:
    """The names of the steps the search kept, after checking each was kept exactly when it gained MIN_GAIN."""
    best = steps[0]["f1"]
    for step in steps[1:]:
        assert step["kept"] == (step["f1"] >= best + MIN_GAIN)
        best = max(best, step["f1"]) if step["kept"] else best
    return [step["step"] for step in steps if step["kept"]]


def test_search_keeps_a_grouping_that_gains_and_drops_what_does_not():
    # {0,1,2,3} is a chain of strong edges (transitivity finds it), {4,5} a pair, 6 alone with a weak false edge
    c, score = scored(7, {(0, 1): 0.9, (1, 2): 0.85, (2, 3): 0.8, (4, 5): 0.9, (0, 6): 0.2})
    labels = np.array([0, 0, 0, 0, 1, 1, 2])
    found, steps = graph_search.search(c, score, labels)
    assert [step["step"] for step in steps] == [
        "threshold", "mutual", "tiered", "agglomerative", "split_oversized", "at_least_one"
    ]  # fmt: skip
    assert kept_steps(steps) == ["threshold", "tiered"]
    assert found["mutual"] is False and found["grouping"]["kind"] == "tiered"
    assert found["split_oversized"] is None and found["at_least_one"] is None
    assert steps[0]["f1"] < 1.0 == steps[2]["f1"] == metric(graph.apply(c, score, found), labels)
    schema.check(json.loads(json.dumps(found)), graph.SCHEMA, "search")


def test_search_keeps_mutual_edges_where_one_direction_is_fooled():
    # true pairs score 0.6 both ways; false pairs 0.95 one way and 0.3 the other: only their minimum separates them
    c, score = scored(6, {(0, 1): 0.6, (2, 3): 0.6, (4, 5): 0.6, (1, 2): (0.95, 0.3), (3, 4): (0.3, 0.95)})
    labels = np.array([0, 0, 1, 1, 2, 2])
    found, steps = graph_search.search(c, score, labels)
    assert kept_steps(steps)[:2] == ["threshold", "mutual"]
    assert found["mutual"] and 0.3 < found["threshold"] <= 0.6
    assert metric(graph.apply(c, score, found), labels) == pytest.approx(1.0)


def with_step(plan: dict, step: dict) -> dict:
    """The config of `plan` changed as a search step proposed."""
    name, values = step["step"], {key: value for key, value in step.items() if key not in ("step", "f1", "kept")}
    if name in ("threshold", "mutual"):
        return plan | values | {"mutual": name == "mutual"}
    if name in ("tiered", "agglomerative"):
        return plan | {"grouping": {"kind": name, **values}}
    return plan | {name: values}


@pytest.mark.parametrize("seed", [1, 2])
def test_apply_reproduces_the_f1_of_every_step_of_the_search(seed):
    c, score, labels = synthetic_graph(150, 4, seed)
    found, steps = graph_search.search(c, score, labels)
    plan = config()
    for step in steps:
        proposed = with_step(plan, step)
        assert metric(graph.apply(c, score, proposed), labels) == pytest.approx(step["f1"]), step
        plan = proposed if step["kept"] else plan
    assert plan == found and metric(graph.apply(c, score, found), labels) < 1.0
    edge = graph.edge_scores(c, score, mutual=False)
    plans = [
        config(grouping={"kind": "tiered", "merge": 0.8, "attach": 0.6, "pair": 0.4}, at_least_one={"floor": 0.2}),
        config(threshold=0.3, split_oversized={"max_size": 6}),
    ]
    for plan in plans:
        lists = graph.apply(c, score, plan)
        assert all(row[0] == i and len(set(row)) == len(row) for i, row in enumerate(lists))
        assert metric(lists, labels) == pytest.approx(graph_search.cluster_f1(graph.clustering(c, edge, plan), labels))
