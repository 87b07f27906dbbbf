import numpy as np

from lib.matching import MAX_MATCHES, identical_key_groups, neighbor_lists, to_posting_ids, union


def test_neighbor_lists_put_self_first_and_drop_padding():
    idx = np.array([[1, 0, -1], [1, 2, 0], [-1, -1, -1]])
    assert neighbor_lists(idx) == [[0, 1], [1, 2, 0], [2]]


def test_identical_key_groups_ignore_empty_keys():
    assert identical_key_groups(["a", "b", "a", "", ""]) == [[0, 2], [1], [2, 0], [3], [4]]


def test_union_keeps_order_removes_duplicates_and_caps():
    first = [[0, 1], [1]]
    second = [[0, 2, 1], [1, 0]]
    assert union(first, second) == [[0, 1, 2], [1, 0]]
    wide = [list(range(80))]
    assert len(union(wide, [[99]])[0]) == MAX_MATCHES


def test_to_posting_ids_caps_at_fifty():
    ids = [f"p{i}" for i in range(60)]
    assert to_posting_ids([[3, 4]], ids) == [["p3", "p4"]]
    assert len(to_posting_ids([list(range(60))], ids)[0]) == MAX_MATCHES
