"""Real matching data laid out as competition folders: public entity-matching sets with gold matches (restaurants,
dblp-acm), from the source distribution of py-entitymatching on PyPI (downloaded once, checked against its hash).

Each record becomes a posting whose title is its fields joined by spaces; records joined by gold matches share a
label_group. test.csv holds 3 postings, as on Kaggle's commit run. There are no images: the title-only plan reads
none. The sets: docs/kernels.md, "Real matching data".

    python -m tools.data.real_data [--out data/real]      (make real-data)
"""

import argparse
import hashlib
import io
import tarfile
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
SDIST = "py-entitymatching-0.4.2.tar.gz"
URL = f"https://files.pythonhosted.org/packages/3d/77/81c61707e98558cadac41f7e7aaf15f217cdd5cc6f106fdec57d8b36eff3/{SDIST}"
SHA256 = "3656a8ab0bdce297ed3ae13c890c0091deeae79367aad44e3f84effd44b60f7f"
DATASETS = "py-entitymatching-0.4.2/py_entitymatching/datasets/"
TEST_ROWS = 3


def download(folder: Path) -> Path:
    """The source distribution, downloaded into `folder` unless it is there; its hash checked either way."""
    path = folder / SDIST
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(URL, timeout=120) as response:
            path.write_bytes(response.read())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SHA256:
        raise ValueError(f"{path}: sha256 {digest}, expected {SHA256}; delete the file and run again")
    return path


def read_member(archive: tarfile.TarFile, name: str) -> pd.DataFrame:
    """One CSV of the package's datasets folder (metadata lines start with #)."""
    return pd.read_csv(io.BytesIO(archive.extractfile(DATASETS + name).read()), comment="#", dtype=str)


def titles(records: pd.DataFrame, fields: list[str]) -> pd.Series:
    """The record's fields joined by spaces, empty fields left out."""
    return records[fields].fillna("").agg(" ".join, axis=1).str.split().str.join(" ")


def label_groups(ids: list[str], pairs: list[tuple[str, str]]) -> np.ndarray:
    """A label per record: records joined by matching pairs, directly or through others, share one."""
    parent = {record: record for record in ids}

    def root(record: str) -> str:
        while parent[record] != record:
            parent[record] = parent[parent[record]]
            record = parent[record]
        return record

    for first, second in pairs:
        parent[root(first)] = root(second)
    roots = [root(record) for record in ids]
    return np.unique(roots, return_inverse=True)[1]


def postings(left: pd.DataFrame, right: pd.DataFrame, pairs: list[tuple[str, str]], fields: list[str]) -> pd.DataFrame:
    """Both tables as labelled postings (ids prefixed a_ and b_), in the competition's train.csv columns."""
    ids = [f"a_{i}" for i in left.id] + [f"b_{i}" for i in right.id]
    prefixed = [(f"a_{first}", f"b_{second}") for first, second in pairs]
    return pd.DataFrame(
        {
            "posting_id": ids,
            "image": [f"{posting}.jpg" for posting in ids],
            "image_phash": "",
            "title": pd.concat([titles(left, fields), titles(right, fields)], ignore_index=True),
            "label_group": label_groups(ids, prefixed),
        }
    )


def restaurants(archive: tarfile.TarFile) -> pd.DataFrame:
    """Fodors and Zagat with their full gold mapping."""
    folder = "end-to-end/restaurants/"
    gold = read_member(archive, folder + "matches_fodors_zagats.csv")
    fields = ["name", "addr", "city", "phone", "type"]
    left, right = read_member(archive, folder + "fodors.csv"), read_member(archive, folder + "zagats.csv")
    return postings(left, right, list(zip(gold.fodors_id, gold.zagats_id)), fields)


def dblp_acm(archive: tarfile.TarFile) -> pd.DataFrame:
    """The DBLP and ACM records of the labelled pair sample, joined by its gold matches."""
    labelled = read_member(archive, "dblp_acm_demo_labels.csv")
    dblp, acm = read_member(archive, "DBLP.csv"), read_member(archive, "ACM.csv")
    left = dblp[dblp.id.isin(labelled["ltable.id"])].reset_index(drop=True)
    right = acm[acm.id.isin(labelled["rtable.id"])].reset_index(drop=True)
    matches = labelled[labelled.gold == "1"]
    return postings(
        left, right, list(zip(matches["ltable.id"], matches["rtable.id"])), ["title", "authors", "venue", "year"]
    )


SETS = {"restaurants": restaurants, "dblp-acm": dblp_acm}


def write_competition(train: pd.DataFrame, folder: Path) -> None:
    """train.csv and a test.csv of TEST_ROWS postings (the commit run's shape) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    train.to_csv(folder / "train.csv", index=False)
    test = train.head(TEST_ROWS).drop(columns="label_group")
    test.assign(posting_id=[f"test_{row}" for row in range(len(test))]).to_csv(folder / "test.csv", index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "real")
    args = parser.parse_args()
    with tarfile.open(download(args.out)) as archive:
        for name, build in SETS.items():
            train = build(archive)
            write_competition(train, args.out / name)
            pairs = int((train.label_group.value_counts() ** 2 - train.label_group.value_counts()).sum() // 2)
            print(f"{args.out / name}: {len(train)} postings, {pairs} matching pairs")


if __name__ == "__main__":
    main()
