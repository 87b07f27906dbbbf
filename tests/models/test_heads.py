"""Each head against a naive float64 reference written with loops and `math`.

Heads compute in float32 from their (possibly rounded) inputs whatever the mode, so the reference takes the values
the head sees (bfloat16-rounded where the mode rounds) and one tolerance holds in every mode: 1e-3 absolute on logits
of scale 30 (float32 cosines of unit vectors are good to ~1e-6) and 1e-4 on the cross-entropy of those logits.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from lib.models.heads import AdaCos, ArcFace, CosFace, CurricularFace, margin_at

CLASSES, WIDTH = 7, 16
LABELS = torch.tensor([0, 1, 2, 3, 4, 5, 6, 0, 1, 2])
MODES = ["float32", "bfloat16", "autocast"]
LOGIT_TOLERANCE, LOSS_TOLERANCE = 1e-3, 1e-4


def inputs(head, mode, seed=0):
    """Embeddings with one row opposite its class centre (theta = pi) and one near it, in the mode's dtype."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(len(LABELS), WIDTH, generator=generator)
    centres = head.weight.detach().view(CLASSES, -1, WIDTH)[:, 0]
    x[0] = -centres[LABELS[0]] * 3
    x[1] = centres[LABELS[1]] + 0.01 * x[1]
    if mode == "bfloat16":
        head.to(torch.bfloat16)
        x = x.to(torch.bfloat16)
    return x


def run(head, x, mode):
    """The head's logits under the mode."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "autocast"):
        return head(x, LABELS)


def naive_cosines(x, weight, subcenters=1):
    """cos(theta) of each row with each class, the best of the class's centres, by loops in float64."""
    x, weight = x.double(), weight.detach().double()
    out = torch.empty(len(x), CLASSES, dtype=torch.float64)
    for i in range(len(x)):
        for c in range(CLASSES):
            centres = weight[c * subcenters : (c + 1) * subcenters]
            out[i, c] = max(float(x[i] @ w / (x[i].norm() * w.norm())) for w in centres)
    return out


def arcface_target(cos, margin, easy_margin):
    """cos(theta + m) where the margin applies, else cos (easy) or cos - m sin m, from theta = acos(cos)."""
    theta = math.acos(max(-1.0, min(1.0, cos)))
    if easy_margin:
        return math.cos(theta + margin) if theta < math.pi / 2 else cos
    return math.cos(theta + margin) if theta + margin < math.pi else cos - margin * math.sin(margin)


def check(logits, reference):
    """Logits and their cross-entropy close to the reference's."""
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits.double(), reference, atol=LOGIT_TOLERANCE, rtol=0)
    loss, reference_loss = F.cross_entropy(logits.double(), LABELS), F.cross_entropy(reference, LABELS)
    assert abs(loss.item() - reference_loss.item()) < LOSS_TOLERANCE


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("easy_margin", [False, True])
@pytest.mark.parametrize("subcenters", [1, 3])
def test_arcface_matches_naive(mode, easy_margin, subcenters):
    torch.manual_seed(0)
    head = ArcFace(WIDTH, CLASSES, scale=30.0, margin=0.5, easy_margin=easy_margin, subcenters=subcenters)
    x = inputs(head, mode)
    cos = naive_cosines(x, head.weight, subcenters)
    reference = cos.clone()
    for i, label in enumerate(LABELS.tolist()):
        reference[i, label] = arcface_target(cos[i, label].item(), 0.5, easy_margin)
    check(run(head, x, mode), 30 * reference)


def test_arcface_margin_can_be_reassigned():
    torch.manual_seed(0)
    head = ArcFace(WIDTH, CLASSES, margin=0.2)
    x = inputs(head, "float32")
    head.margin = 0.8
    cos = naive_cosines(x, head.weight)
    reference = cos.clone()
    for i, label in enumerate(LABELS.tolist()):
        reference[i, label] = arcface_target(cos[i, label].item(), 0.8, False)
    check(head(x, LABELS), 30 * reference)


@pytest.mark.parametrize("mode", MODES)
def test_cosface_matches_naive(mode):
    torch.manual_seed(0)
    head = CosFace(WIDTH, CLASSES, scale=30.0, margin=0.35)
    x = inputs(head, mode)
    reference = naive_cosines(x, head.weight)
    for i, label in enumerate(LABELS.tolist()):
        reference[i, label] -= 0.35
    check(run(head, x, mode), 30 * reference)


def naive_adacos_scale(cos, scale):
    """ln(B) / cos(min(pi/4, median true-class angle)), B the mean over rows of sum_j!=y exp(scale cos)."""
    sums = [sum(math.exp(scale * cos[i, j].item()) for j in range(CLASSES) if j != y) for i, y in enumerate(LABELS)]
    angles = sorted(math.acos(cos[i, y].item()) for i, y in enumerate(LABELS.tolist()))
    median = angles[(len(angles) - 1) // 2]
    return math.log(sum(sums) / len(sums)) / math.cos(min(math.pi / 4, median))


@pytest.mark.parametrize("mode", MODES)
def test_adacos_matches_naive(mode):
    torch.manual_seed(0)
    head = AdaCos(WIDTH, CLASSES)
    x = inputs(head, mode)
    cos = naive_cosines(x, head.weight)

    def stored(scale):
        """The scale as the head's buffer holds it: in the head's dtype."""
        return torch.tensor(scale).to(x.dtype).item()

    scale = stored(math.sqrt(2) * math.log(CLASSES - 1))
    head.eval()
    check(run(head, x, mode), scale * cos)
    head.train()
    for _ in range(2):
        scale = stored(naive_adacos_scale(cos, scale))
        check(run(head, x, mode), scale * cos)


def naive_curricular(cos, t, margin):
    """Hard wrong classes (cos > cos(theta_y + m)) modulated by cos (t + cos); ArcFace's true-class logit."""
    logits = cos.clone()
    for i, y in enumerate(LABELS.tolist()):
        shifted = math.cos(math.acos(cos[i, y].item()) + margin)
        for j in range(CLASSES):
            if j != y and cos[i, j] > shifted:
                logits[i, j] = cos[i, j] * (t + cos[i, j])
        logits[i, y] = arcface_target(cos[i, y].item(), margin, False)
    return logits


@pytest.mark.parametrize("mode", MODES)
def test_curricularface_matches_naive(mode):
    torch.manual_seed(0)
    head = CurricularFace(WIDTH, CLASSES, scale=30.0, margin=0.5)
    x = inputs(head, mode)
    cos = naive_cosines(x, head.weight)
    mean_target = sum(cos[i, y].item() for i, y in enumerate(LABELS.tolist())) / len(LABELS)
    t = 0.0
    for _ in range(2):
        t = 0.99 * t + 0.01 * mean_target
        check(run(head, x, mode), 30 * naive_curricular(cos, t, 0.5))
    head.eval()
    check(run(head, x, mode), 30 * naive_curricular(cos, t, 0.5))


HEADS = {
    "arcface": lambda: ArcFace(WIDTH, CLASSES),
    "subcenter_arcface": lambda: ArcFace(WIDTH, CLASSES, subcenters=3),
    "easy_arcface": lambda: ArcFace(WIDTH, CLASSES, easy_margin=True),
    "cosface": lambda: CosFace(WIDTH, CLASSES),
    "adacos": lambda: AdaCos(WIDTH, CLASSES),
    "curricularface": lambda: CurricularFace(WIDTH, CLASSES),
}


@pytest.mark.parametrize("name", HEADS)
@pytest.mark.parametrize("mode", MODES)
def test_gradients_reach_embeddings_and_centres(name, mode):
    torch.manual_seed(0)
    head = HEADS[name]()
    x = inputs(head, mode).requires_grad_()
    F.cross_entropy(run(head, x, mode), LABELS).backward()
    for grad in (x.grad, head.weight.grad):
        assert grad.dtype == x.dtype and torch.isfinite(grad).all()
        assert (grad.abs().sum(1) > 0).sum() >= CLASSES
    assert x.grad[0].abs().sum() > 0, "the row at theta = pi gets a gradient"


@pytest.mark.parametrize("name", HEADS)
def test_optimiser_steps_lower_the_loss(name):
    torch.manual_seed(0)
    head = HEADS[name]()
    x = torch.nn.Parameter(torch.randn(len(LABELS), WIDTH))
    optimiser = torch.optim.Adam([x, *head.parameters()], lr=0.05)
    losses = []
    for _ in range(15):
        loss = F.cross_entropy(head(x, LABELS), LABELS)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


@pytest.mark.parametrize(
    ("epoch", "epochs", "expected"),
    [(0, 5, 0.2), (2, 5, 0.5), (4, 5, 0.8), (9, 5, 0.8), (1.5, 4, 0.5), (-1, 5, 0.2), (0, 1, 0.8)],
)
def test_margin_ramps_linearly(epoch, epochs, expected):
    assert margin_at(epoch, epochs, 0.2, 0.8) == pytest.approx(expected)
