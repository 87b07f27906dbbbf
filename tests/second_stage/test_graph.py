"""lib.second_stage.graph: pair scores to groups, each rule against a naive reference on small hand-made graphs."""

import itertools

import numpy as np
import pytest

from lib import schema
from lib.data.submission import MAX_MATCHES
from lib.matching.metrics import mean_f1, true_matches
from lib.matching.pairs import Candidates, pair_truth
from lib.second_stage import graph, graph_search
from tools.bench.synthetic import synthetic_graph


def scored(n: int, scores: dict) -> tuple[Candidates, np.ndarray]:
    """Symmetric candidate pairs and their scores from {(i, j): p} (both ways) or {(i, j): (p(i, j), p(j, i))}."""
    directed = {}
    for (i, j), p in scores.items():
        directed[i, j], directed[j, i] = p if isinstance(p, tuple) else (p, p)
    keys = np.array(sorted(i * n + j for i, j in directed), dtype=np.int64)
    score = np.array([directed[key // n, key % n] for key in keys.tolist()], dtype=np.float32)
    return Candidates(n, keys // n, keys % n, {}, {}), score


def partition(cluster) -> set[frozenset]:
    """The clusters as sets of postings."""
    return {frozenset(np.flatnonzero(cluster == own).tolist()) for own in set(cluster.tolist())}


def metric(lists: list[list[int]], labels) -> float:
    """The competition metric on match lists of row indices."""
    ids = [str(i) for i in range(len(labels))]
    return mean_f1([[ids[j] for j in row] for row in lists], true_matches(ids, labels))


def config(**changes) -> dict:
    """A graph config: the threshold base at 0.5 with `changes`."""
    return {
        "mutual": False,
        "threshold": 0.5,
        "grouping": None,
        "split_oversized": None,
        "at_least_one": None,
    } | changes


def test_edge_scores_are_the_mean_or_with_mutual_the_minimum_of_both_directions():
    c, score = scored(3, {(0, 1): (0.9, 0.3), (1, 2): (0.6, 0.7)})
    pair = {(i, j): k for k, (i, j) in enumerate(zip(c.rows.tolist(), c.cols.tolist()))}
    mean, least = graph.edge_scores(c, score, mutual=False), graph.edge_scores(c, score, mutual=True)
    assert mean[pair[0, 1]] == mean[pair[1, 0]] == pytest.approx(0.6)
    assert least[pair[0, 1]] == least[pair[1, 0]] == pytest.approx(0.3)
    assert least[pair[2, 1]] == pytest.approx(0.6)
    assert graph.apply(c, score, config(threshold=0.55)) == [[0, 1], [1, 2, 0], [2, 1]]
    assert graph.apply(c, score, config(threshold=0.55, mutual=True)) == [[0], [1, 2], [2, 1]]
    one_way = Candidates(3, np.array([0]), np.array([1]), {}, {})
    with pytest.raises(ValueError, match="not symmetric"):
        graph.edge_scores(one_way, np.array([0.5], dtype=np.float32), mutual=False)


# Pairs {0,1} and {2,3}; 4 next to 3; two singles 5-6 and 7-8.
TIERS = {(0, 1): 0.95, (2, 3): 0.9, (3, 4): 0.65, (1, 2): 0.6, (5, 6): 0.35, (7, 8): 0.25}


def test_tiered_merges_attaches_and_pairs_at_their_own_thresholds():
    c, score = scored(9, TIERS)
    edge = graph.edge_scores(c, score, mutual=False)
    clusters = graph.tiered_clusters(c, edge, merge=0.7, attach=0.6, pair=0.3)
    assert partition(clusters) == {frozenset(s) for s in [{0, 1}, {2, 3, 4}, {5, 6}, {7}, {8}]}
    clusters = graph.tiered_clusters(c, edge, merge=0.55, attach=0.6, pair=0.3)
    assert partition(clusters) == {frozenset(s) for s in [{0, 1, 2, 3, 4}, {5, 6}, {7}, {8}]}
    clusters = graph.tiered_clusters(c, edge, merge=0.55, attach=0.7, pair=0.2)
    assert partition(clusters) == {frozenset(s) for s in [{0, 1, 2, 3}, {4}, {5, 6}, {7, 8}]}


def clique(size: int, p: float = 0.9) -> dict:
    """Every pair of `size` postings at score p."""
    return {pair: p for pair in itertools.combinations(range(size), 2)}


def test_no_cluster_or_list_exceeds_max_matches():
    c, score = scored(60, clique(60))
    labels = np.zeros(60, dtype=int)
    edge = graph.edge_scores(c, score, mutual=False)
    assert np.bincount(graph.tiered_clusters(c, edge, 0.5, 0.5, 0.5)).max() == MAX_MATCHES
    assert np.bincount(graph.cut(graph.agglomerative(c, edge), 60.0)).max() == MAX_MATCHES
    assert np.bincount(graph.at_least_one(c, edge, np.r_[np.zeros(50, int), np.arange(1, 11)], 0.1)).max() == 50
    for plan in [config(), config(grouping={"kind": "tiered", "merge": 0.5, "attach": 0.5, "pair": 0.5})]:
        lists = graph.apply(c, score, plan)
        assert max(map(len, lists)) == MAX_MATCHES
        assert all(row[0] == i and len(set(row)) == len(row) for i, row in enumerate(lists))
    curve = graph_search.threshold_curve(c, edge, pair_truth(c, labels))
    assert curve[np.searchsorted(graph_search.SCORE_GRID, 0.5)] == pytest.approx(
        metric(graph.apply(c, score, config()), labels)
    )


def brute_average_linkage(n: int, scores: dict, cap: int) -> list[tuple[float, set[frozenset]]]:
    """Average-linkage merges by trying every pair of clusters of at most `cap` together each time: (linkage,
    clusters after it) per merge."""
    weight = {frozenset(pair): p for pair, p in scores.items()}
    clusters, merges = [frozenset([i]) for i in range(n)], []
    while True:
        linkages = {
            (a, b): sum(weight.get(frozenset((i, j)), 0.0) for i in a for j in b) / (len(a) * len(b))
            for a, b in itertools.combinations(clusters, 2)
            if len(a) + len(b) <= cap
        }
        if not linkages or max(linkages.values()) <= 0:
            return merges
        (a, b), linkage = max(linkages.items(), key=lambda item: item[1])
        clusters = [own for own in clusters if own not in (a, b)] + [a | b]
        merges.append((linkage, set(clusters)))


# 1-2 is stronger than 3-4, but {0, 1} to 2 averages 0.8 and a missing edge (0-2) to 0.4: 3-4 merges first
AVERAGED = {(0, 1): 0.9, (1, 2): 0.8, (3, 4): 0.5, (2, 3): 0.1, (4, 5): 0.05, (0, 3): 0.02}


@pytest.mark.parametrize("cap", [MAX_MATCHES, 3])
def test_agglomerative_merges_by_average_linkage_and_cuts_at_a_mean_size(cap, monkeypatch):
    monkeypatch.setattr(graph, "MAX_MATCHES", cap)
    rng = np.random.default_rng(3)
    randomly = {pair: float(rng.uniform(0.01, 1)) for pair in itertools.combinations(range(9), 2) if rng.random() < 0.4}
    for n, edges in [(6, AVERAGED), (9, randomly)]:
        c, score = scored(n, edges)
        merges = graph.agglomerative(c, graph.edge_scores(c, score, mutual=False))
        brute = brute_average_linkage(n, {pair: float(np.float32(p)) for pair, p in edges.items()}, cap)
        assert merges.linkage == pytest.approx([linkage for linkage, _ in brute])
        for (_, clusters), mean_size in zip(brute, merges.mean_size):
            assert mean_size == pytest.approx(sum(len(own) ** 2 for own in clusters) / n)
            assert partition(graph.cut(merges, mean_size)) == clusters
    c, score = scored(6, AVERAGED)
    edge = graph.edge_scores(c, score, mutual=False)
    assert partition(graph.cut(graph.agglomerative(c, edge), 1.6)) == {frozenset(s) for s in [{0, 1}, {3, 4}, {2}, {5}]}
    assert len(graph.agglomerative(c, edge, until_size=1.6).first) == 2


def test_split_oversized_removes_the_bridge_between_two_cliques():
    bridge = clique(4) | {(i + 4, j + 4): 0.9 for i, j in clique(4)} | {(3, 4): 0.6, (8, 9): 0.9, (1, 9): 0.2}
    c, score = scored(10, bridge)
    edge = graph.edge_scores(c, score, mutual=False)
    one = np.r_[np.zeros(8, int), 1, 1]
    split = graph.split_oversized(one, c, edge, threshold=0.5, max_size=5)
    assert partition(split) == {frozenset(range(4)), frozenset(range(4, 8)), frozenset({8, 9})}
    assert partition(graph.split_oversized(one, c, edge, threshold=0.5, max_size=8)) == partition(one)
    components = graph.components(c, edge, 0.5)
    assert partition(components) == {frozenset(range(8)), frozenset({8, 9})}
    lists = graph.apply(c, score, config(split_oversized={"max_size": 5}))
    assert [set(row) for row in lists] == [set(range(4))] * 4 + [set(range(4, 8))] * 4 + [{8, 9}] * 2


def test_splits_at_several_sizes_go_on_from_each_other_as_if_each_started_over():
    c, score, _ = synthetic_graph(200, 6, 0)
    edge = graph.edge_scores(c, score, mutual=False)
    cluster = graph.components(c, edge, 0.3)
    assert np.bincount(cluster).max() > graph.PEEL_SIZE  # cut to its strongest edges first
    split = graph.splits(cluster, c, edge, 0.3, [5, 12, 40])
    for max_size in [5, 12, 40]:
        assert partition(split[max_size]) == partition(graph.split_oversized(cluster, c, edge, 0.3, max_size))
        assert np.bincount(np.unique(split[max_size], return_inverse=True)[1]).max() <= max_size


def test_a_giant_component_is_first_cut_to_its_strongest_edges():
    c, score, _ = synthetic_graph(3000, 6, 1)
    edge = graph.edge_scores(c, score, mutual=False)
    cluster = graph.components(c, edge, 0.05)
    assert np.bincount(cluster).max() > 2 * graph.PEEL_SIZE  # betweenness alone would take minutes here
    split = graph.split_oversized(cluster, c, edge, 0.05, 20)
    assert np.bincount(np.unique(split, return_inverse=True)[1]).max() <= 20
    small = np.bincount(cluster)[cluster] <= 20
    assert np.array_equal(split[small] == split[small][:, None], cluster[small] == cluster[small][:, None])


def test_at_least_one_gives_a_lone_posting_its_best_candidate_above_the_floor():
    # 0-1 a cluster; 2's best is 1 (0.4); 3 and 4 are each other's best (0.3); 5's best is 4 (0.1)
    c, score = scored(6, {(0, 1): 0.9, (1, 2): 0.4, (0, 2): 0.2, (3, 4): 0.3, (4, 5): 0.1})
    edge = graph.edge_scores(c, score, mutual=False)
    cluster = np.array([0, 0, 2, 3, 4, 5])
    assert partition(graph.at_least_one(c, edge, cluster, 0.25)) == {
        frozenset({0, 1, 2}),
        frozenset({3, 4}),
        frozenset({5}),
    }
    assert partition(graph.at_least_one(c, edge, cluster, 0.05)) == {frozenset({0, 1, 2}), frozenset({3, 4, 5})}
    assert partition(graph.at_least_one(c, edge, cluster, 0.5)) == partition(cluster)
    lists = graph.apply(c, score, config(threshold=0.8, at_least_one={"floor": 0.25}))
    assert lists == [[0, 1], [1, 0], [2, 1], [3, 4], [4, 3], [5]]
    full = np.r_[np.zeros(50, int), 50]
    c, score = scored(51, clique(50) | {(0, 50): 0.6})
    assert partition(graph.at_least_one(c, graph.edge_scores(c, score, mutual=False), full, 0.1)) == partition(full)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"mutual": "no"}, "mutual: 'no' is not true or false"),
        ({"threshold": 1.5}, r"threshold: 1.5 is not a number in \[0.0, 1.0\]"),
        ({"grouping": {"kind": "spectral"}}, "grouping.kind: 'spectral' is not one of"),
        (
            {"grouping": {"kind": "tiered", "merge": 0.8, "attach": 0.7}},
            r"grouping.pair: missing; expected a number in \[0.0, ",
        ),
        ({"grouping": {"kind": "agglomerative", "target_size": 0.5}}, "grouping.target_size: 0.5 is not"),
        ({"split_oversized": {"max_size": 2.5}}, r"split_oversized.max_size: 2.5 is not an integer in \[1, 50\]"),
        ({"at_least_one": {"floor": None}}, "at_least_one.floor: None is not a number"),
        ({"extra": 1}, r"extra: unknown key; the keys here are \['at_least_one', 'grouping', 'mutual'"),
    ],
)
def test_the_schema_names_the_source_and_the_key(change, message):
    schema.check(config(), graph.SCHEMA, "plan.json")
    with pytest.raises(ValueError, match=f"^plan.json: {message}"):
        schema.check(config(**change), graph.SCHEMA, "plan.json")
