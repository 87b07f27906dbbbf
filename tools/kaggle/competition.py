"""The competition's files through the CLI, unzipped and checked by lib's readers."""

import tempfile
import zipfile
from pathlib import Path

from lib.data.competition import COMPETITION
from tools.kaggle.cli import CliFailed, DeliveryError, kaggle


def competition_data(out: Path) -> Path:
    """Download the competition's files through the CLI into `out`, unzipped, and check them: train.csv and test.csv
    by lib's readers (errors name the file and row), every image they name present."""
    with tempfile.TemporaryDirectory(prefix="competition-") as tmp:
        try:
            kaggle("competitions", "download", "-c", COMPETITION, "-p", tmp, "-q")
        except CliFailed as error:
            if not error.forbidden:
                raise
            raise DeliveryError(
                f"Kaggle refused the download of {COMPETITION} (403): accept its rules first at "
                f"https://www.kaggle.com/competitions/{COMPETITION}/rules (the same account as your credentials), "
                "then run `make competition-data` again"
            ) from error
        archives = list(Path(tmp).glob("*.zip"))
        if not archives:
            raise DeliveryError(f"the kaggle CLI downloaded no zip of {COMPETITION}; see its output above")
        out.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(archives[0]) as archive:
            archive.extractall(out)
    check_competition(out)
    print(f"{COMPETITION} in {out}: use it as COMP={out} (make run, make train ...)")
    return out


def check_competition(folder: Path) -> None:
    """train.csv and test.csv readable by lib's readers, and each posting's image in its images folder."""
    from lib.data.postings import read_postings

    for name, labelled in [("train", True), ("test", False)]:
        postings = read_postings(folder / f"{name}.csv", labelled=labelled)
        images = folder / f"{name}_images"
        present = {path.name for path in images.iterdir()} if images.is_dir() else set()
        missing = [(row, image) for row, image in enumerate(postings.image, start=2) if image not in present]
        if missing:
            row, image = missing[0]
            raise DeliveryError(
                f"{folder / name}.csv: {len(missing)} image(s) missing from {images}, the first {image} (line {row}); "
                "download again with `make competition-data`"
            )
        print(f"{name}.csv: {len(postings)} postings, every image present")
