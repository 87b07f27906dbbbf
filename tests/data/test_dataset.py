import os
import threading
import time

import pytest
from torch.utils.data import Dataset

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
    loader = dataset.data_loader(Hangs(), 1)
    with pytest.raises(RuntimeError, match="timed out"):  # the item would come after 60 s
        next(iter(loader))
    assert dataset.data_loader(Hangs(), 0).timeout == 0  # a loader without worker processes takes no timeout


NOTEBOOK_CELL = """
import os
from torch.utils.data import Dataset

class Parents(Dataset):
    def __len__(self):
        return 6

    def __getitem__(self, index):
        return index * factor, os.getppid()

def pair_up(items):
    return [tuple(item) for item in items]

factor = 10
"""


def test_workers_start_from_a_server_not_from_this_process_and_get_notebook_code_by_value():
    notebook = {"__name__": "__main__"}  # a built notebook's cell: its classes are not importable by name
    exec(NOTEBOOK_CELL, notebook)
    busy = threading.Event()
    thread = threading.Thread(target=busy.wait, daemon=True)  # a kernel's threads: never copied into a worker
    thread.start()
    loader = dataset.data_loader(notebook["Parents"](), 2, batch_size=2, collate_fn=notebook["pair_up"])
    batches = [batch for _ in range(3) for batch in loader]
    busy.set()
    assert [value for batch in batches[:3] for value, _ in batch] == [0, 10, 20, 30, 40, 50]
    assert len(batches) == 9 and all(parent != os.getpid() for batch in batches for _, parent in batch)


def test_batches_name_the_images_read_as_placeholders_from_worker_processes(tmp_path):
    import numpy as np
    import pandas as pd
    from PIL import Image

    from lib.data.augment import eval_transform

    for name in ["a.jpg", "c.jpg"]:
        Image.fromarray(np.zeros((40, 40, 3), dtype=np.uint8)).save(tmp_path / name)
    (tmp_path / "b.jpg").write_bytes(b"not an image")
    frame = pd.DataFrame({"image": ["a.jpg", "b.jpg", "c.jpg", "d.jpg"], "title": ["w", "x", "y", "z"]})
    postings = dataset.Postings(frame, tmp_path, eval_transform(32, (0.5,) * 3, (0.25,) * 3))
    loader = dataset.data_loader(postings, 1, batch_size=2, collate_fn=dataset.Collate())
    batches = list(loader)
    assert [batch["image"].shape[0] for batch in batches] == [2, 2]
    assert [[name.split(":")[0] for name in batch["unreadable"]] for batch in batches] == [["b.jpg"], ["d.jpg"]]
    assert batches[1]["unreadable"][0].startswith("d.jpg: FileNotFoundError")
    text_only = dataset.Collate()([{"title": "x"}, {"title": "y"}])
    assert text_only == {"title": ["x", "y"]}, "a text model's batches carry no images and so no unreadable list"
