"""Each loss against a naive float64 reference written with loops and `math`.

Losses compute in float32 from their (possibly rounded) inputs whatever the mode, so the reference takes the values
the loss sees (bfloat16-rounded where the mode rounds) and one tolerance holds in every mode: 1e-4 absolute.
"""

import math

import pytest
import torch

from lib.models.losses import batch_hard_triplet_loss, cross_entropy, focal_loss, info_nce_loss

LABELS = torch.tensor([0, 1, 2, 0, 1, 3, 0, 4])  # labels 2, 3 and 4 have one member: anchors without positives
MODES = ["float32", "bfloat16", "autocast"]
TOLERANCE = 1e-4


def tensor(rows, columns, mode, seed=0, scale=1.0):
    """Random values (standard deviation `scale`) in the mode's dtype, requiring gradients."""
    x = scale * torch.randn(rows, columns, generator=torch.Generator().manual_seed(seed))
    return x.to(torch.bfloat16 if mode == "bfloat16" else torch.float32).requires_grad_()


def run(loss, *args, mode, **options):
    """The loss under the mode, checked to be float32 and finite, and its gradients to be finite."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "autocast"):
        value = loss(*args, **options)
    assert value.dtype == torch.float32 and torch.isfinite(value)
    value.backward()
    assert all(torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0 for a in args if a.requires_grad)
    return value.item()


def naive_log_softmax(row):
    """log p of each entry of a list of logits."""
    top = max(row)
    total = math.log(sum(math.exp(v - top) for v in row)) + top
    return [v - total for v in row]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_matches_naive(mode, smoothing):
    logits = tensor(len(LABELS), 6, mode, scale=3.0)
    classes = logits.shape[1]
    expected = 0.0
    for row, label in zip(logits.tolist(), LABELS.tolist()):
        log_p = naive_log_softmax(row)
        expected -= sum(((1 - smoothing) * (j == label) + smoothing / classes) * log_p[j] for j in range(classes))
    value = run(cross_entropy, logits, LABELS, mode=mode, smoothing=smoothing)
    assert value == pytest.approx(expected / len(LABELS), abs=TOLERANCE)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("gamma", [0.0, 2.0])
def test_focal_loss_matches_naive(mode, gamma):
    logits = tensor(len(LABELS), 6, mode, scale=3.0)
    expected = 0.0
    for row, label in zip(logits.tolist(), LABELS.tolist()):
        log_p = naive_log_softmax(row)[label]
        expected -= (1 - math.exp(log_p)) ** gamma * log_p
    value = run(focal_loss, logits, LABELS, mode=mode, gamma=gamma)
    assert value == pytest.approx(expected / len(LABELS), abs=TOLERANCE)


def naive_cosine(a, b):
    """The cosine of two lists."""
    dot = sum(x * y for x, y in zip(a, b))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


@pytest.mark.parametrize("mode", MODES)
def test_batch_hard_triplet_loss_matches_naive(mode):
    x = tensor(len(LABELS), 5, mode)
    rows, labels = x.tolist(), LABELS.tolist()
    terms = []
    for a in range(len(rows)):
        distances = [1 - naive_cosine(rows[a], rows[b]) for b in range(len(rows))]
        positives = [distances[b] for b in range(len(rows)) if labels[b] == labels[a] and b != a]
        negatives = [distances[b] for b in range(len(rows)) if labels[b] != labels[a]]
        if positives and negatives:
            terms.append(max(0.0, max(positives) - min(negatives) + 0.3))
    assert len(terms) == 5
    value = run(batch_hard_triplet_loss, x, LABELS, mode=mode, margin=0.3)
    assert value == pytest.approx(sum(terms) / len(terms), abs=TOLERANCE)


@pytest.mark.parametrize("labels", [torch.zeros(4, dtype=torch.long), torch.arange(4)])
def test_batch_hard_triplet_loss_is_zero_without_triplets(labels):
    x = tensor(4, 5, "float32")
    value = batch_hard_triplet_loss(x, labels)
    value.backward()
    assert value.item() == 0 and (x.grad == 0).all()


@pytest.mark.parametrize("mode", MODES)
def test_info_nce_loss_matches_naive(mode):
    image, text = tensor(len(LABELS), 5, mode, seed=1), tensor(len(LABELS), 5, mode, seed=2)
    images, texts, labels = image.tolist(), text.tolist(), LABELS.tolist()
    similarity = [[naive_cosine(i, t) / 0.07 for t in texts] for i in images]
    total = 0.0
    for i in range(len(labels)):
        # negatives: postings of other labels; the posting's own pair is the positive
        kept = [j for j in range(len(labels)) if j == i or labels[j] != labels[i]]
        total -= naive_log_softmax([similarity[i][j] for j in kept])[kept.index(i)] / 2
        total -= naive_log_softmax([similarity[j][i] for j in kept])[kept.index(i)] / 2
    value = run(info_nce_loss, image, text, LABELS, mode=mode, temperature=0.07)
    assert value == pytest.approx(total / len(labels), abs=TOLERANCE)


@pytest.mark.parametrize(
    "loss", [lambda x, y: batch_hard_triplet_loss(x, LABELS), lambda x, y: info_nce_loss(x, y, LABELS)]
)
def test_optimiser_steps_lower_the_embedding_losses(loss):
    x, y = (torch.nn.Parameter(torch.randn(len(LABELS), 8, generator=torch.Generator().manual_seed(s))) for s in (0, 1))
    optimiser = torch.optim.Adam([x, y], lr=0.05)
    losses = []
    for _ in range(15):
        value = loss(x, y)
        optimiser.zero_grad()
        value.backward()
        optimiser.step()
        losses.append(value.item())
    assert losses[-1] < 0.7 * losses[0], losses
