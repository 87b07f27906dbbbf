"""Where delivery reads and writes in the repository, and the folder names of the kernels it pushes."""

from lib.data.competition import COMPETITION
from tools.kaggle.preflight import ROOT

KERNELS = ROOT / "kernels"
BUILD = ROOT / "build"
RUNS = ROOT / "runs"
SAMPLE = ROOT / "data" / "sample"
COMPETITION_DATA = ROOT / "data" / COMPETITION
LOCAL_DATASETS = ROOT / "data" / "datasets"
MODELS = ROOT / "data" / "models"  # local copies of Kaggle models, by owner/model/framework/instance/version
INFERENCE = "shopee-inference"
TRAIN = "shopee-train"
PUSH_RECORD = "push.json"
