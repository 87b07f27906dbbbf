"""Pair scores to groups: the match lists of a graph config, from a pair classifier's probabilities.

`edge_scores` makes each candidate pair undirected (the mean of p(i, j) and p(j, i), or their minimum: mutual edges).
A posting's matches are itself and either its candidates whose edge reaches a threshold, or the other members of its
cluster: tiered union-find (5th place), average-linkage agglomeration cut at a target mean cluster size (3rd place),
or thresholded components split by edge betweenness (2nd place); a posting left alone may get its best candidate
(`at_least_one`). No cluster exceeds MAX_MATCHES. `apply` writes the match lists of a config, SCHEMA describes one
(lib.schema); lib.second_stage.graph_search tunes it on CV.
"""

import heapq
from collections import defaultdict
from dataclasses import dataclass

import networkx as nx
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from lib.data.submission import MAX_MATCHES
from lib.matching.pairs import NO_MATCH, Candidates

TIERS = ("merge", "attach", "pair")  # tiered thresholds: two groups, a group and a single posting, two singles
PEEL_SIZE = MAX_MATCHES  # the largest part whose edges betweenness ranks (`splits`)


def reverse(c: Candidates) -> np.ndarray:
    """The position of each pair's reverse pair; ValueError when some pair lacks it."""
    reverse_keys = c.cols * c.n + c.rows
    position = np.searchsorted(c.keys, reverse_keys)  # c.keys is sorted
    if (c.keys[position.clip(max=len(c.keys) - 1)] != reverse_keys).any():
        raise ValueError("graph: the candidate pairs are not symmetric; add (j, i) for every pair (i, j)")
    return position


def edge_scores(c: Candidates, score: np.ndarray, mutual: bool) -> np.ndarray:
    """Each pair's undirected score (float32): the mean of its two directions' scores, or with `mutual` the minimum."""
    both = (score, score[reverse(c)])
    return (np.minimum(*both) if mutual else (both[0] + both[1]) / 2).astype(np.float32)


def ranked(c: Candidates, edge: np.ndarray) -> np.ndarray:
    """Pair positions ordered by row, then by decreasing edge score (ties: the lower column first)."""
    return np.lexsort((c.cols, -edge, c.rows))


def capped(c: Candidates, edge: np.ndarray) -> np.ndarray:
    """Edge scores, -inf on the pairs after each row's best MAX_MATCHES - 1: a threshold on them keeps what lists
    hold."""
    order = ranked(c, edge)
    rank = np.arange(len(order)) - np.searchsorted(c.rows, c.rows)  # c.rows is sorted, so c.rows[order] is c.rows
    limited = edge.copy()
    limited[order[rank >= MAX_MATCHES - 1]] = -np.inf
    return limited


def linked(n: int, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Cluster ids of n postings joined by the pairs (first[k], second[k]) and everything they connect."""
    graph = coo_matrix((np.ones(len(first)), (first, second)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def components(c: Candidates, edge: np.ndarray, threshold: float) -> np.ndarray:
    """Cluster ids of the connected components of the edges reaching `threshold`."""
    kept = edge >= threshold
    return linked(c.n, c.rows[kept], c.cols[kept])


def undirected(c: Candidates, edge: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each edge once (i < j) as arrays i, j and score, by decreasing score (ties: by pair key)."""
    upper = np.flatnonzero(c.rows < c.cols)
    order = upper[np.argsort(-edge[upper], kind="stable")]
    return c.rows[order], c.cols[order], edge[order]


def tiered(n: int, edges: tuple, merge: float, attach: float, pair: float, limit: int = MAX_MATCHES) -> np.ndarray:
    """`tiered_clusters` on the `undirected` edges, clusters of at most `limit` postings."""
    first, second, scores = edges
    rules = [float(np.float32(value)) for value in (merge, attach, pair)]  # compared as float32, like thresholds
    stop = np.searchsorted(-scores, -np.float32(min(rules)), side="right")
    parent, size = list(range(n)), [1] * n

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b, score in zip(first[:stop].tolist(), second[:stop].tolist(), scores[:stop].tolist()):
        a, b = root(a), root(b)
        if a != b and size[a] + size[b] <= limit and score >= rules[(size[a] == 1) + (size[b] == 1)]:
            a, b = (a, b) if size[a] >= size[b] else (b, a)
            parent[b], size[a] = a, size[a] + size[b]
    return np.array([root(x) for x in range(n)])


def tiered_clusters(c: Candidates, edge: np.ndarray, merge: float, attach: float, pair: float) -> np.ndarray:
    """Cluster ids from every posting alone, joining the two clusters of each edge by decreasing score when it
    reaches `merge` (both have 2+ members), `attach` (exactly one is a single posting) or `pair` (both are), and the
    joined cluster stays within MAX_MATCHES."""
    return tiered(c.n, undirected(c, edge), merge, attach, pair)


@dataclass
class Merges:
    """An agglomeration of n postings: per merge, a posting of each of the two clusters, their linkage and the mean
    over postings of their cluster size after it."""

    n: int
    first: np.ndarray
    second: np.ndarray
    linkage: np.ndarray
    mean_size: np.ndarray


def agglomerative(c: Candidates, edge: np.ndarray, until_size: float = np.inf) -> Merges:
    """Average-linkage agglomeration of the sparse graph: merge the two clusters of highest linkage (the sum of the
    edge scores between them over |A| |B|; missing edges count 0) while it is above 0, never over MAX_MATCHES, and
    while the mean over postings of their cluster size is below `until_size` (a cut needs no more).

    Each live cluster (named by a member) keeps its sums to its neighbours, and each adjacent pair an entry in the
    heap at least its linkage: a merge pushes the linkages with the smaller cluster's neighbours (these may rise) and
    the others only fall, so an entry popped above its pair's linkage is pushed again at it, and one popped equal is
    the highest linkage of all. A pair over MAX_MATCHES can never merge and is forgotten."""
    n, sums, heap = c.n, [{} for _ in range(c.n)], []
    for a, b, score in zip(*(array.tolist() for array in undirected(c, edge))):
        if score > 0:
            sums[a][b] = sums[b][a] = score
            heap.append((-score, a * n + b))
    heapq.heapify(heap)
    size, squares, merges = [1] * n, n, []
    while heap and squares < until_size * n:
        negative, key = heapq.heappop(heap)
        a, b = divmod(key, n)
        if not size[a] or not size[b] or b not in sums[a]:
            continue  # merged since, or forgotten
        if size[a] + size[b] > MAX_MATCHES:
            del sums[a][b], sums[b][a]
            continue
        linkage = sums[a][b] / (size[a] * size[b])
        if linkage != -negative:
            if linkage < -negative:
                heapq.heappush(heap, (-linkage, key))
            continue
        a, b = (a, b) if size[a] >= size[b] else (b, a)
        squares += 2 * size[a] * size[b]
        size[a], size[b] = size[a] + size[b], 0
        merges.append((a, b, linkage, squares / n))
        for other, weight in sums[b].items():
            del sums[other][b]
            if other != a:
                sums[other][a] = sums[a][other] = sums[a].get(other, 0.0) + weight
                pair = a * n + other if a < other else other * n + a
                heapq.heappush(heap, (-sums[a][other] / (size[a] * size[other]), pair))
        sums[b] = {}
    columns = np.array(merges, dtype=float).reshape(-1, 4)
    return Merges(c.n, columns[:, 0].astype(int), columns[:, 1].astype(int), columns[:, 2], columns[:, 3])


def cut(merges: Merges, target_size: float) -> np.ndarray:
    """Cluster ids after the merges made while the mean over postings of their cluster size was below
    `target_size` (all of them when it never reaches it)."""
    before = np.concatenate([[1.0], merges.mean_size])
    count = min(int(np.searchsorted(before, target_size, side="left")), len(merges.first))
    return linked(merges.n, merges.first[:count], merges.second[:count])


def pieces(parts: list[nx.Graph], max_size: int) -> list[nx.Graph]:
    """The connected parts left after removing, in each part over `max_size`, its edge of highest edge betweenness
    until none is (each part a graph of its own, changed in place; a part's removals depend on it alone)."""
    pending, done = list(parts), []
    while pending:
        part = pending.pop()
        if part.number_of_nodes() <= max_size:
            done.append(part)
            continue
        centrality = nx.edge_betweenness_centrality(part)
        part.remove_edge(*max(centrality, key=centrality.get))
        found = list(nx.connected_components(part))
        pending.extend([part] if len(found) == 1 else [part.subgraph(nodes).copy() for nodes in found])
    return done


def splits(cluster: np.ndarray, c: Candidates, edge: np.ndarray, threshold: float, max_sizes) -> dict:
    """`split_oversized` at each of `max_sizes`, from the largest, each going on from the last one's removals (the
    same as starting over, since a part's removals depend on it alone). A part over PEEL_SIZE postings (a giant
    component of a low threshold on a large test) is first cut to its strongest edges by union-find from the
    strongest edge, refusing unions past PEEL_SIZE: betweenness costs a part's size squared (docs/results.md, Graph
    steps)."""
    _, compact, sizes = np.unique(cluster, return_inverse=True, return_counts=True)
    large = sizes[compact] > min(max_sizes)
    kept = large[c.rows] & (compact[c.rows] == compact[c.cols]) & (edge >= threshold) & (c.rows < c.cols)
    ordered = np.flatnonzero(kept)[np.argsort(-edge[kept], kind="stable")]
    strongest = tiered(c.n, (c.rows[ordered], c.cols[ordered], edge[ordered]), -1.0, -1.0, -1.0, PEEL_SIZE)
    kept &= strongest[c.rows] == strongest[c.cols]  # parts over PEEL_SIZE lose their weakest edges first
    graph = nx.Graph()
    graph.add_nodes_from(np.flatnonzero(large).tolist())
    graph.add_edges_from(zip(c.rows[kept].tolist(), c.cols[kept].tolist()))
    parts, split = [graph.subgraph(nodes).copy() for nodes in nx.connected_components(graph)], {}
    for max_size in sorted(max_sizes, reverse=True):
        parts = pieces(parts, max_size)
        split[max_size] = compact.copy()
        for number, part in enumerate(parts, start=len(sizes)):
            nodes = list(part.nodes)
            if sizes[compact[nodes[0]]] > max_size:
                split[max_size][nodes] = number
    return split


def split_oversized(cluster: np.ndarray, c: Candidates, edge: np.ndarray, threshold: float, max_size: int):
    """New cluster ids: each cluster over `max_size` becomes the parts of its edges reaching `threshold` that
    `pieces` leaves; the other clusters stay."""
    return splits(cluster, c, edge, threshold, [max_size])[max_size]


def best_candidates(c: Candidates, edge: np.ndarray) -> np.ndarray:
    """The position of each posting's candidate pair of highest edge score (ties: the lower column), -1 if none."""
    rows, starts = np.unique(c.rows, return_index=True)
    top = np.flatnonzero(edge == np.repeat(np.maximum.reduceat(edge, starts), np.diff([*starts, len(edge)])))
    best = np.full(c.n, -1)
    best[rows] = top[np.unique(c.rows[top], return_index=True)[1]]  # a row's pairs go by column
    return best


def at_least_one(c: Candidates, edge: np.ndarray, cluster: np.ndarray, floor: float) -> np.ndarray:
    """New cluster ids: each posting alone in its cluster joins the cluster of its best candidate when that edge
    reaches `floor` and the cluster has room (so two lone best partners make a pair); lone postings go by decreasing
    best edge, and one joined by another meanwhile is alone no more."""
    _, cluster, sizes = np.unique(cluster, return_inverse=True, return_counts=True)
    best = best_candidates(c, edge)
    lone = np.flatnonzero((sizes[cluster] == 1) & (best >= 0))
    lone = lone[edge[best[lone]] >= floor]
    for posting in lone[np.argsort(-edge[best[lone]], kind="stable")].tolist():
        partner = c.cols[best[posting]]
        if sizes[cluster[posting]] == 1 and sizes[cluster[partner]] < MAX_MATCHES:
            sizes[cluster[posting]], sizes[cluster[partner]] = 0, sizes[cluster[partner]] + 1
            cluster[posting] = cluster[partner]
    return cluster


def at_least_one_pair(c: Candidates, edge: np.ndarray, selected: np.ndarray, floor: float) -> np.ndarray:
    """The base's `at_least_one`: a posting with no kept pair keeps its best candidate pair when its edge reaches
    `floor` (min2 on edge scores; the partner's own matches stay)."""
    best = best_candidates(c, edge)
    picks = best[(np.bincount(c.rows[selected], minlength=c.n) == 0) & (best >= 0)]
    added = np.zeros_like(selected)
    added[picks[edge[picks] >= floor]] = True
    return selected | added


def clustering(c: Candidates, edge: np.ndarray, config: dict) -> np.ndarray | None:
    """The cluster ids a config makes from the edge scores; None for the base (thresholded candidates)."""
    grouping, split, lone = config["grouping"], config["split_oversized"], config["at_least_one"]
    if grouping is None and split is None:
        return None
    if grouping is None:
        cluster = components(c, edge, config["threshold"])
    elif grouping["kind"] == "tiered":
        cluster = tiered_clusters(c, edge, *(grouping[tier] for tier in TIERS))
    else:
        cluster = cut(agglomerative(c, edge, grouping["target_size"]), grouping["target_size"])
    if split is not None:
        cluster = split_oversized(cluster, c, edge, config["threshold"], split["max_size"])
    return cluster if lone is None else at_least_one(c, edge, cluster, lone["floor"])


def ranked_columns(c: Candidates, edge: np.ndarray, mask: np.ndarray) -> list[list[int]]:
    """Each row's columns among the masked pairs, by decreasing edge score."""
    order = ranked(c, edge)
    order = order[mask[order]]
    bounds, cols = np.searchsorted(c.rows[order], np.arange(c.n + 1)), c.cols[order]
    return [cols[bounds[row] : bounds[row + 1]].tolist() for row in range(c.n)]


def apply(c: Candidates, score: np.ndarray, config: dict) -> list[list[int]]:
    """Each posting's matches under a config: itself, then its kept candidates or its cluster's members (those it
    has an edge with by decreasing edge score, then the others by index), at most MAX_MATCHES. With the threshold
    alone a row keeps at most its best MAX_MATCHES - 1 candidates, as the match lists do. The config
    (lib.second_stage.graph_search.search):

        {"mutual": false, "threshold": 0.55,
         "grouping": null | {"kind": "tiered", "merge": 0.8, "attach": 0.7, "pair": 0.3}
                          | {"kind": "agglomerative", "target_size": 2.7},
         "split_oversized": null | {"max_size": 12}, "at_least_one": null | {"floor": 0.2}}
    """
    edge = edge_scores(c, score, config["mutual"])
    cluster = clustering(c, edge, config)
    if cluster is None:
        selected = capped(c, edge) >= config["threshold"]
        if config["at_least_one"] is not None:
            selected = at_least_one_pair(c, edge, selected, config["at_least_one"]["floor"])
        return [([row] + near)[:MAX_MATCHES] for row, near in enumerate(ranked_columns(c, edge, selected))]
    near = ranked_columns(c, edge, cluster[c.rows] == cluster[c.cols])
    members = defaultdict(list)
    for posting, own in enumerate(cluster.tolist()):
        members[own].append(posting)
    lists = []
    for row, own in enumerate(cluster.tolist()):
        seen = {row, *near[row]}
        lists.append(([row] + near[row] + [other for other in members[own] if other not in seen])[:MAX_MATCHES])
    return lists


UNIT = {"type": "number", "low": 0.0, "high": 1.0}
TIER = {"type": "number", "low": 0.0, "high": NO_MATCH}
SCHEMA = {  # a graph matching config (lib.schema)
    "type": "mapping",
    "keys": {
        "mutual": {"type": "bool"},
        "threshold": UNIT,
        "grouping": {
            "type": "mapping",
            "null": True,
            "keys": {"kind": {"type": "choice", "of": ["tiered", "agglomerative"]}},
            "select": {
                "kind": {
                    "tiered": dict.fromkeys(TIERS, TIER),
                    "agglomerative": {"target_size": {"type": "number", "low": 1.0, "high": float(MAX_MATCHES)}},
                }
            },
        },
        "split_oversized": {
            "type": "mapping",
            "null": True,
            "keys": {"max_size": {"type": "int", "low": 1, "high": MAX_MATCHES}},
        },
        "at_least_one": {"type": "mapping", "null": True, "keys": {"floor": UNIT}},
    },
}
