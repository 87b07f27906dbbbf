import time

import pytest
from torch.utils.data import DataLoader, Dataset

from lib.data import dataset


class Hangs(Dataset):
    """A dataset whose items never come (a stalled image read)."""

    def __len__(self):
        return 4

    def __getitem__(self, index):
        time.sleep(60)
        return index


def test_a_hung_loader_worker_raises_instead_of_stalling_the_kernel(monkeypatch):
    monkeypatch.setattr(dataset, "LOADER_TIMEOUT_S", 1)
    loader = DataLoader(Hangs(), num_workers=1, timeout=dataset.loader_timeout(1))
    with pytest.raises(RuntimeError, match="timed out"):  # the item would come after 60 s
        next(iter(loader))
    assert dataset.loader_timeout(0) == 0  # a loader without worker processes takes no timeout
