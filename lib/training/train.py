"""The training loop of an experiment (lib.training.experiment): one process per GPU through accelerate, outputs
per epoch.

`run` trains in the current process, or on every GPU (2 x T4 on Kaggle) through accelerate's notebook_launcher, one
process each, gradients averaged by DDP. accelerate's per-process state (`PartialState`, `AcceleratorState`) cannot be
reset, so trainings in one process must agree on device and mixed precision, and a multi-GPU launch must come from a
process that has not trained: a kernel trains once; tests needing other settings start a process. After each epoch
the main process writes the best checkpoint, the OOF embeddings, metrics, plots, the MLflow run and last.pt to resume
from (the loop and the files: docs/training.md, *Experiment options* and *Outputs*).
"""

import json
import math
import os
import shutil
from contextlib import nullcontext
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # the training processes draw files only

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from accelerate import Accelerator, notebook_launcher  # noqa: E402
from accelerate.utils import DistributedDataParallelKwargs  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from tqdm import tqdm  # noqa: E402

from lib.data import images, paths  # noqa: E402
from lib.data.augment import backbone_stats, train_transform  # noqa: E402
from lib.data.competition import COMPETITION  # noqa: E402
from lib.data.dataset import Collate, Postings, data_loader, seed_worker  # noqa: E402
from lib.data.folds import group_folds  # noqa: E402
from lib.data.oof import METRICS, MODEL, OOF  # noqa: E402
from lib.data.postings import read_postings  # noqa: E402
from lib.matching import plots, thresholds  # noqa: E402
from lib.matching.cv import cv_scores  # noqa: E402
from lib.models import create_model, save_checkpoint  # noqa: E402
from lib.models.embed import embed_batches, eval_dataset, model_inputs  # noqa: E402
from lib.training.experiment import RANDOM_WEIGHTS, size_at  # noqa: E402
from lib.training.tracking import Tracker  # noqa: E402

RESUME = "last.pt"
CURVES = "training_curves.png"
F1_PLOT = "f1_vs_threshold.png"
PARTS = {"image.backbone.": "image", "text.model.": "text", "heads.": "head"}


def part_of(name: str) -> str:
    """The learning-rate part of a parameter: image, text, head, or neck (pooling, projections, fusion)."""
    return next((part for prefix, part in PARTS.items() if name.startswith(prefix)), "neck")


def parameter_groups(model: torch.nn.Module, lr: dict[str, float], weight_decay: float) -> list[dict]:
    """AdamW groups: one per part and decay, each with its part's learning rate; 1-d parameters (biases, norms,
    GeM p, layer weights) get no weight decay."""
    groups: dict[tuple[str, bool], list] = {}
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            groups.setdefault((part_of(name), parameter.ndim > 1), []).append(parameter)
    return [
        {"params": params, "lr": lr[part], "base_lr": lr[part], "part": part, "weight_decay": weight_decay * decay}
        for (part, decay), params in sorted(groups.items())
    ]


def lr_factor(update: int, updates: int, warmup: int) -> float:
    """The learning-rate multiplier of an update (0-based): linear warm-up to 1, then cosine decay to 0."""
    if update < warmup:
        return (update + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (update - warmup) / max(updates - warmup, 1)))


def epoch_seed(*keys: int) -> int:
    """A 32-bit seed mixed from integers (seed, epoch, process)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1)[0])


def epoch_batches(rows: int, batch_size: int, seed: int, rank: int, processes: int) -> list[list[int]]:
    """One process's batches of an epoch: a seeded permutation of the rows, an equal share per process, full
    batches only (BatchNorm needs more than one posting; every process must take as many steps)."""
    share = rows // processes
    full = share // batch_size
    if full == 0:
        raise ValueError(
            f"train.batch_size: {batch_size} postings per process, but each of {processes} process(es) has {share} "
            "training postings; lower it"
        )
    order = np.random.default_rng(seed).permutation(rows)[rank * share : (rank + 1) * share]
    return order[: full * batch_size].reshape(full, batch_size).tolist()


def model_config(config: dict, num_classes: int) -> dict:
    """The lib.models config of the experiment: num_classes set, input-relative paths made real (random image
    weights: none)."""
    model = json.loads(json.dumps(config["model"])) | {"num_classes": num_classes}
    if model.get("image"):
        weights = model["image"]["weights"]
        model["image"]["weights"] = None if weights == RANDOM_WEIGHTS else paths.input_path(weights)
    if model.get("text"):
        model["text"]["model_dir"] = paths.input_path(model["text"]["model_dir"])
    return model


def split(config: dict, comp_dir: Path):
    """(training postings, their class per row, validation postings or None, their label groups or None)."""
    train = read_postings(Path(comp_dir) / "train.csv", labelled=True)
    fold = config["folds"]["fold"]
    if fold is None:
        fitted, held = train, None
    else:
        folds = group_folds(train.label_group, config["folds"]["count"], config["seed"])
        fitted, held = train[folds != fold].reset_index(drop=True), train[folds == fold].reset_index(drop=True)
    classes = np.unique(fitted.label_group, return_inverse=True)[1]
    return fitted, classes, held, None if held is None else held.label_group.to_numpy()


def write_atomically(path: Path, write) -> None:
    """Call write(temporary path), then move it over `path`: a kill never leaves half a file."""
    partial = path.with_name(path.name + ".partial")
    write(partial)
    os.replace(partial, path)


def training_curves(history: list[dict]) -> plt.Figure:
    """Loss and CV F1 of each output against epoch."""
    figure, (loss_axis, cv_axis) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = [entry["epoch"] for entry in history]
    loss_axis.plot(epochs, [entry["loss"] for entry in history], marker="o", label="loss")
    for term in history[0]["losses"]:
        loss_axis.plot(epochs, [entry["losses"][term] for entry in history], marker=".", label=term)
    loss_axis.set(xlabel="epoch", ylabel="training loss (epoch mean)", title="loss")
    loss_axis.legend()
    if history[0]["cv"]:
        for output in history[0]["cv"]:
            cv_axis.plot(epochs, [entry["cv"][output] for entry in history], marker="o", label=output)
        cv_axis.legend()
    cv_axis.set(xlabel="epoch", ylabel="CV mean F1 (best threshold)", title="validation")
    for axis in (loss_axis, cv_axis):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    figure.tight_layout()
    return figure


class Training:
    """One process's share of a training run: data, model, optimizer, the epoch loop and, on the main process,
    the outputs."""

    def __init__(self, config: dict, name: str, comp_dir: Path, out_dir: Path):
        self.config, self.name, self.out_dir = config, name, Path(out_dir)
        train = config["train"]
        cuda = torch.cuda.is_available()
        self.accelerator = Accelerator(
            cpu=not cuda,
            mixed_precision="fp16" if cuda and train["amp"] else "no",
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        )
        self.main = self.accelerator.is_main_process
        self.comp_dir = Path(comp_dir)
        self.fitted, self.classes, self.held, self.held_labels = split(config, comp_dir)
        torch.manual_seed(config["seed"])
        model = create_model(model_config(config, int(self.classes.max()) + 1))
        self.optimizer = torch.optim.AdamW(parameter_groups(model, train["lr"], train["weight_decay"]))
        saved = self.resume_state()
        if saved is not None:
            model.load_state_dict(saved.pop("model"))
            self.optimizer.load_state_dict(saved.pop("optimizer"))
        self.model, self.optimizer = self.accelerator.prepare(model, self.optimizer)
        scaler = saved.pop("scaler") if saved is not None else None
        if scaler is not None and self.accelerator.scaler is not None:
            self.accelerator.scaler.load_state_dict(scaler)
        self.state = saved
        self.batches = len(self.batches_of(0))
        self.updates_per_epoch = math.ceil(self.batches / train["accumulate"])
        self.updates = self.updates_per_epoch * train["epochs"]
        self.warmup = round(train["warmup"] * self.updates)

    @property
    def unwrapped(self):
        return self.accelerator.unwrap_model(self.model)

    def resume_state(self) -> dict | None:
        """The state a killed run left in the output folder, if any."""
        path = self.out_dir / RESUME
        return torch.load(path, map_location="cpu", weights_only=True) if path.is_file() else None

    def batches_of(self, epoch: int) -> list[list[int]]:
        """This process's batches of an epoch."""
        seed = epoch_seed(self.config["seed"], epoch)
        batch_size = self.config["train"]["batch_size"]
        rank, processes = self.accelerator.process_index, self.accelerator.num_processes
        return epoch_batches(len(self.fitted), batch_size, seed, rank, processes)

    def describe(self) -> str:
        """What is trained on what, in one line."""
        train, accelerator = self.config["train"], self.accelerator
        valid = f"{len(self.held)} validation postings" if self.held is not None else "no validation (all data)"
        batch = train["batch_size"] * accelerator.num_processes * train["accumulate"]
        return (
            f"{self.name}: {len(self.fitted)} training postings in {self.classes.max() + 1} groups, {valid}; "
            f"{accelerator.num_processes} process(es) on {accelerator.device.type}, {self.batches} steps per epoch, "
            f"{batch} postings per update, {self.updates} updates ({self.warmup} warm-up)"
        )

    def loader(self, epoch: int) -> DataLoader:
        """The epoch's training batches: its image size, augmentations and order seeded from (seed, epoch)."""
        seed = epoch_seed(self.config["seed"], epoch)
        model = self.unwrapped
        transform = None
        if model.image is not None:
            size = size_at(self.config, epoch)
            transform = train_transform(size, self.config["image"]["augment"], *backbone_stats(model), seed)
        dataset = Postings(self.fitted, self.comp_dir / "train_images", transform, self.classes)
        dataset.reseed(seed)
        return data_loader(
            dataset,
            self.config["train"]["workers"],
            batch_sampler=self.batches_of(epoch),
            collate_fn=Collate(),
            worker_init_fn=seed_worker,
            generator=torch.Generator().manual_seed(seed),
            pin_memory=self.accelerator.device.type == "cuda",
        )

    def train_epoch(self, epoch: int, update: int) -> tuple[dict, int]:
        """One epoch of updates from update number `update`; (epoch means of the losses, the next update number)."""
        train, accelerator, model = self.config["train"], self.accelerator, self.model
        epochs, accumulate = train["epochs"], train["accumulate"]
        torch.manual_seed(epoch_seed(self.config["seed"], epoch, accelerator.process_index))
        model.train()
        totals: dict[str, float] = {}
        size = f" {size_at(self.config, epoch)}px" if self.unwrapped.image is not None else ""
        bar = tqdm(total=self.batches, desc=f"epoch {epoch + 1}/{epochs}{size}", unit="step", disable=not self.main)
        unreadable, seen = [], 0
        for step, batch in enumerate(self.loader(epoch)):
            unreadable += batch.get("unreadable", [])
            seen += len(batch["title"])
            first = step - step % accumulate
            group = min(first + accumulate, self.batches) - first
            sync = step + 1 == first + group
            self.unwrapped.schedule_margins(epoch + step / self.batches, epochs)
            with nullcontext() if sync else accelerator.no_sync(model):
                output = model(model_inputs(self.unwrapped, batch))
                accelerator.backward(output["loss"] / group)
            if sync:
                factor = lr_factor(update, self.updates, self.warmup)
                for parameters in self.optimizer.param_groups:
                    parameters["lr"] = parameters["base_lr"] * factor
                if train["clip"] is not None:
                    accelerator.clip_grad_norm_(model.parameters(), train["clip"])
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                update += 1
            for term, value in {"loss": output["loss"], **output["losses"]}.items():
                totals[term] = totals.get(term, 0.0) + float(value.detach())
            bar.update()
            bar.set_postfix(loss=f"{totals['loss'] / (step + 1):.4f}", lr=f"{self.optimizer.param_groups[0]['lr']:.2e}")
        bar.close()
        self.report_images(unreadable, seen)
        means = accelerator.reduce(torch.tensor(list(totals.values()), device=accelerator.device), "mean")
        return dict(zip(totals, (means / self.batches).tolist())), update

    def sync_buffers(self) -> None:
        """Give every process the main process's buffers (BatchNorm statistics, AdaCos scale): DDP sends them at
        each forward, so the processes end an epoch each with the statistics of its own last batch."""
        if self.accelerator.num_processes > 1:
            for buffer in self.unwrapped.buffers():
                torch.distributed.broadcast(buffer, 0)

    @torch.no_grad()
    def validate(self, epoch: int) -> dict[str, np.ndarray]:
        """Each output's embeddings of the validation postings, computed on every process and gathered in order."""
        accelerator, model = self.accelerator, self.unwrapped
        model.eval()
        dataset = eval_dataset(model, self.held, self.comp_dir / "train_images", size_at(self.config, epoch))
        batch_size, workers = self.config["valid"]["batch_size"], self.config["train"]["workers"]
        loader = data_loader(dataset, workers, batch_size=batch_size, collate_fn=Collate())
        loader = accelerator.prepare(loader)
        gather = accelerator.gather_for_metrics
        unreadable: list[str] = []
        embeddings = embed_batches(
            model, loader, accelerator.autocast, "validation embeddings", unreadable, gather=gather, show=self.main
        )
        self.report_images(unreadable, len(dataset))
        return embeddings

    def report_images(self, unreadable: list[str], total: int) -> None:
        """One line on the train images a pass read as placeholders; a mostly unreadable folder stops training."""
        report = images.unreadable_report(self.comp_dir / "train_images", unreadable, total)
        if report and self.main:
            print(report)

    def fit(self) -> None:
        """Every epoch not done yet: train, validate, and on the main process write the outputs."""
        state = self.state or {"epoch": 0, "update": 0, "history": [], "best": None, "run_id": None}
        tracker = Tracker(self.out_dir, self.name, self.config, state["run_id"]) if self.main else None
        if self.unwrapped.image is not None:
            images.require_folder(self.comp_dir / "train_images")
        if self.main:
            print(self.describe() + (f"; continuing after epoch {state['epoch']}" if self.state else ""))
        update = state["update"]
        for epoch in range(state["epoch"], self.config["train"]["epochs"]):
            losses, update = self.train_epoch(epoch, update)
            self.sync_buffers()
            embeddings = self.validate(epoch) if self.held is not None else None
            if self.main:
                self.record(epoch, losses, embeddings, state, tracker)
                state |= {"epoch": epoch + 1, "update": update, "run_id": tracker.run_id}
                self.save_state(state)
            self.accelerator.wait_for_everyone()
        if self.main:
            (self.out_dir / RESUME).unlink(missing_ok=True)
            tracker.finish()

    def record(self, epoch: int, losses: dict, embeddings: dict | None, state: dict, tracker: Tracker) -> None:
        """Score an epoch and write its outputs: metrics, plots, MLflow, and model.pt + OOF when it is the best."""
        size = size_at(self.config, epoch)
        entry = {"epoch": epoch + 1, "image_size": size, "loss": losses.pop("loss"), "losses": losses}
        entry["lr"] = {group["part"]: group["lr"] for group in self.optimizer.param_groups}
        entry |= {"cv": None, "thresholds": None}
        if embeddings is not None:
            scores, curves = cv_scores(embeddings, self.held_labels, self.config["valid"]["k"])
            entry |= {"cv": scores["f1"], "thresholds": scores["thresholds"]}
            alone = {output: scores["thresholds"][output] for output in curves}
            plots.f1_curves(thresholds.GRID, curves, alone).savefig(self.out_dir / F1_PLOT, dpi=80)
            plt.close("all")
        state["history"].append(entry)
        score = entry["cv"]["union"] if entry["cv"] else None
        if state["best"] is None or score is None or score > state["best"]["cv"]:
            state["best"] = {"epoch": epoch + 1, "cv": score}
            self.save_best(entry, embeddings)
        summary = {"experiment": self.name, "config": self.config, "best": state["best"], "epochs": state["history"]}
        (self.out_dir / METRICS).write_text(json.dumps(summary, indent=2) + "\n")
        training_curves(state["history"]).savefig(self.out_dir / CURVES, dpi=80)
        plt.close("all")
        cv = {f"cv_{output}": value for output, value in (entry["cv"] or {}).items()}
        lr = {f"lr_{part}": value for part, value in entry["lr"].items()}
        losses = {f"loss_{term}": value for term, value in losses.items()}
        tracker.log_metrics({"loss": entry["loss"], **losses, **cv, **lr, "image_size": size}, epoch + 1)
        for name in [METRICS, CURVES, F1_PLOT]:
            if (self.out_dir / name).is_file():
                tracker.log_artifact(self.out_dir / name)
        shown = ", ".join(f"{output} {value:.4f}" for output, value in (entry["cv"] or {}).items())
        print(f"epoch {epoch + 1}: loss {entry['loss']:.4f}" + (f"; CV F1 {shown}" if shown else ""))

    def save_best(self, entry: dict, embeddings: dict | None) -> None:
        """model.pt with what inference needs in `extra`, and the OOF embeddings of the same epoch."""
        extra = {
            "experiment": self.name,
            "epoch": entry["epoch"],
            "image_size": entry["image_size"],
            "cv": entry["cv"],
            "thresholds": entry["thresholds"],
            "config": self.config,
        }
        write_atomically(self.out_dir / MODEL, lambda path: save_checkpoint(path, self.unwrapped, extra))
        if embeddings is not None:
            arrays = {output: values.astype(np.float16) for output, values in embeddings.items()}
            ids = self.held.posting_id.to_numpy(dtype=str)

            def write(path: Path) -> None:
                with open(path, "wb") as file:
                    np.savez(file, posting_id=ids, label_group=self.held_labels, **arrays)

            write_atomically(self.out_dir / OOF, write)

    def save_state(self, state: dict) -> None:
        """last.pt: everything a killed run needs to continue as if it had not stopped."""
        scaler = self.accelerator.scaler
        resume = {
            **state,
            "model": self.unwrapped.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
        }
        write_atomically(self.out_dir / RESUME, lambda path: torch.save(resume, path))


def train_process(config: dict, name: str, comp_dir: Path, out_dir: Path) -> None:
    """The training of one process (accelerate's state, one per process, is set up by its Accelerator)."""
    Training(config, name, comp_dir, out_dir).fit()


def continue_from(source: str, out_dir: Path) -> None:
    """Copy a killed run's outputs (an attached source `<slug>[/folder]` holding last.pt) into the output folder."""
    folder = Path(paths.input_path(source))
    if not (folder / RESUME).is_file():
        raise FileNotFoundError(f"resume: no {RESUME} in {folder}; give the output of a run that was stopped early")
    shutil.copytree(folder, out_dir, dirs_exist_ok=True)


def run(config: dict, name: str, out_dir: Path, processes: int | None = None) -> dict:
    """Train experiment `name` (a config of lib.training.experiment.resolve) into out_dir; returns its metrics.json.

    The competition data is the attached shopee-product-matching source. A last.pt in out_dir (or, with `resume`
    set and none there, in the source it names) is continued from.

    Args:
        processes: training processes; default one per CUDA device, or one on the CPU.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if config["resume"] and not (out_dir / RESUME).is_file():
        continue_from(config["resume"], out_dir)
    processes = processes or max(torch.cuda.device_count(), 1)
    arguments = (config, name, paths.input_dir(COMPETITION), out_dir)
    if processes == 1:
        train_process(*arguments)
    else:
        notebook_launcher(train_process, arguments, num_processes=processes)
    return json.loads((out_dir / METRICS).read_text())
