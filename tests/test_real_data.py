import io
import tarfile

import pandas as pd
import pytest

from tools.data import real_data


def archive_with(tmp_path, members: dict[str, str]) -> tarfile.TarFile:
    """A tar archive holding CSV text under the package's datasets folder, as the source distribution does."""
    path = tmp_path / "sdist.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name, content in members.items():
            data = content.encode()
            info = tarfile.TarInfo(real_data.DATASETS + name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return tarfile.open(path)


def test_label_groups_join_records_through_chains_of_matches():
    labels = real_data.label_groups(["a", "b", "c", "d", "e"], [("a", "b"), ("c", "b"), ("d", "d")])
    assert labels[0] == labels[1] == labels[2]
    assert len({labels[0], labels[3], labels[4]}) == 3


def test_restaurants_become_postings_with_shared_labels_for_gold_pairs(tmp_path):
    folder = "end-to-end/restaurants/"
    header = "id,name,addr,city,phone,type\n"
    archive = archive_with(
        tmp_path,
        {
            folder + "fodors.csv": header + "1,arnie mortons,435 s. la cienega,los angeles,310/246-1501,american\n"
            "2,asahi ramen,,west la,310-479-2231,noodles\n",
            folder + "zagats.csv": header + "7,arnie morton's,435 s. la cienega blvd.,los angeles,310-246-1501,steak\n",
            folder + "matches_fodors_zagats.csv": "fodors_id,zagats_id\n1,7\n",
        },
    )
    train = real_data.restaurants(archive)
    assert list(train.columns) == ["posting_id", "image", "image_phash", "title", "label_group"]
    assert train.posting_id.tolist() == ["a_1", "a_2", "b_7"]
    assert train.title[1] == "asahi ramen west la 310-479-2231 noodles"  # the empty address left out
    assert train.label_group[0] == train.label_group[2] != train.label_group[1]


def test_dblp_acm_keeps_the_records_of_the_labelled_sample(tmp_path):
    header = "id,title,authors,venue,year\n"
    labels = "_id,ltable.id,rtable.id,gold\n0,d1,5,1\n1,d2,5,0\n"
    archive = archive_with(
        tmp_path,
        {
            "DBLP.csv": header + "d1,Broadcast Disks,S. Acharya,SIGMOD,1995.0\nd2,Other,X,VLDB,1996\n"
            "d3,Unused,Y,VLDB,1997\n",
            "ACM.csv": header + "5,Broadcast disks,Swarup Acharya,SIGMOD,1995\n6,Unused,Z,VLDB,1998\n",
            "dblp_acm_demo_labels.csv": "#key=_id\n" + labels,
        },
    )
    train = real_data.dblp_acm(archive)
    assert train.posting_id.tolist() == ["a_d1", "a_d2", "b_5"]
    assert train.label_group[0] == train.label_group[2] != train.label_group[1]


def test_competition_folder_has_a_three_row_test(tmp_path):
    train = pd.DataFrame(
        {"posting_id": list("abcde"), "image": "x.jpg", "image_phash": "", "title": list("vwxyz"), "label_group": 1}
    )
    real_data.write_competition(train, tmp_path / "set")
    test = pd.read_csv(tmp_path / "set" / "test.csv")
    assert test.posting_id.tolist() == ["test_0", "test_1", "test_2"] and "label_group" not in test
    written = pd.read_csv(tmp_path / "set" / "train.csv", keep_default_na=False)
    assert written.equals(train)


def test_a_download_with_another_hash_is_refused_naming_the_file(tmp_path):
    (tmp_path / real_data.SDIST).write_bytes(b"not the package")
    with pytest.raises(ValueError, match=f"{real_data.SDIST}: sha256 .* delete the file"):
        real_data.download(tmp_path)
