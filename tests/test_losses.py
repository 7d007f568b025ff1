"""Each loss against its formula, recomputed here in float64 numpy with explicit loops."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch

from training.losses import create_loss, list_losses
from training.losses.features import gram_matrix

# small stand-ins for a 3D net's forward_features: stage outputs (B, C, T, H, W), pool (B, F), logits (B, K)
SHAPES_3D = {
    "res2": (3, 4, 2, 3, 3),
    "res3": (3, 6, 1, 2, 2),
    "res4": (3, 8, 1, 2, 2),
    "res5": (3, 10, 1, 1, 1),
    "pool": (3, 10),
    "logits": (3, 5),
}
# a 2D (TSN-style) net's stage outputs are (B*T, C, H, W)
SHAPES_2D = {
    "res2": (6, 4, 3, 3),
    "res3": (6, 6, 2, 2),
    "res4": (6, 8, 2, 2),
    "res5": (6, 10, 1, 1),
    "pool": (3, 10),
    "logits": (3, 5),
}
TARGET = torch.tensor([0, 3, 4])


def make_feats(seed: int, shapes=SHAPES_3D, requires_grad: bool = False) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=gen).requires_grad_(requires_grad) for k, s in shapes.items()}


def np64(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def ce_reference(logits: np.ndarray, target) -> float:
    total = 0.0
    for row, t in zip(logits, target.tolist()):
        total += math.log(sum(math.exp(v) for v in row)) - row[t]
    return total / len(logits)


def kl_reference(s: np.ndarray, t: np.ndarray) -> float:
    """mean over rows of sum_j p_j (log p_j - log q_j), p = softmax(s row), q = softmax(t row)."""
    total = 0.0
    for s_row, t_row in zip(s, t):
        zs, zt = sum(math.exp(v) for v in s_row), sum(math.exp(v) for v in t_row)
        for a, b in zip(s_row, t_row):
            p, q = math.exp(a) / zs, math.exp(b) / zt
            total += p * (math.log(p) - math.log(q))
    return total / len(s)


def gram_reference(x: np.ndarray) -> np.ndarray:
    """(N, C, ...) -> (N, C, C): G[n, i, j] = sum_m f_i[m] f_j[m] / (C * M)."""
    n, c = x.shape[:2]
    f = x.reshape(n, c, -1)
    m = f.shape[2]
    g = np.zeros((n, c, c))
    for k in range(n):
        for i in range(c):
            for j in range(c):
                g[k, i, j] = sum(f[k, i, p] * f[k, j, p] for p in range(m)) / (c * m)
    return g


def assert_close(value: torch.Tensor, expected: float):
    assert value.dim() == 0
    assert value.item() == pytest.approx(expected, rel=1e-5, abs=1e-6)


# ---- registry --------------------------------------------------------------------------------------


def test_registry_has_the_issue8_losses_and_names_the_choices():
    assert {"ce", "mars", "imrs", "dual_action"} <= set(list_losses())
    with pytest.raises(ValueError, match="dual_action"):
        create_loss("mars_v2")


@pytest.mark.parametrize("name", list_losses())
def test_every_loss_returns_a_scalar_loss_and_its_terms(name):
    loss_fn = create_loss(name)
    student, teacher = make_feats(1, requires_grad=True), make_feats(2)
    extra = {"student2": make_feats(3)} if "student2" in inspect.signature(loss_fn).parameters else {}
    out = loss_fn(student, TARGET, teacher, **extra)
    assert "loss" in out and len(out) >= 2  # the loss plus at least one named term to log
    assert all(v.dim() == 0 and torch.isfinite(v) for v in out.values())
    out["loss"].backward()
    assert student["logits"].grad is not None


# ---- each loss against its formula -----------------------------------------------------------------


def test_ce_matches_the_log_softmax_formula():
    student = make_feats(3)
    out = create_loss("ce")(student, TARGET)
    assert_close(out["ce"], ce_reference(np64(student["logits"]), TARGET))
    assert torch.equal(out["loss"], out["ce"])


@pytest.mark.parametrize("alpha", [50.0, 2.0])
def test_mars_is_ce_plus_alpha_times_feature_mse(alpha):
    student, teacher = make_feats(4), make_feats(5)
    loss_fn = create_loss("mars") if alpha == 50.0 else create_loss("mars", alpha=alpha)  # 50 is MARS's default
    out = loss_fn(student, TARGET, teacher)
    s, t = np64(student["pool"]), np64(teacher["pool"])
    mse = sum((a - b) ** 2 for a, b in zip(s.ravel(), t.ravel())) / s.size
    ce = ce_reference(np64(student["logits"]), TARGET)
    assert_close(out["feat_mse"], mse)
    assert_close(out["ce"], ce)
    assert_close(out["loss"], ce + alpha * mse)


@pytest.mark.parametrize("feature", ["pool", "logits"])
def test_imrs_is_eq8_with_mse_and_softmax_kl(feature):
    student, teacher = make_feats(6), make_feats(7)
    loss_fn = create_loss("imrs") if feature == "pool" else create_loss("imrs", feature=feature)
    out = loss_fn(student, TARGET, teacher)
    s, t = np64(student[feature]), np64(teacher[feature])
    mse = float(np.mean((s - t) ** 2))
    kl = kl_reference(s, t)
    ce = ce_reference(np64(student["logits"]), TARGET)
    assert_close(out["feat_mse"], mse)
    assert_close(out["feat_kl"], kl)
    assert_close(out["loss"], ce + 50.0 * mse + 200.0 * kl)  # lambda1 = 50, lambda2 = 200 (IMRS 4.3.2)


def test_imrs_kl_is_student_relative_to_teacher():
    student, teacher = make_feats(8), make_feats(9)
    student["pool"] = student["pool"] * 3  # sharper student distribution: KL(P||Q) != KL(Q||P)
    out = create_loss("imrs")(student, TARGET, teacher)
    forward_kl = kl_reference(np64(student["pool"]), np64(teacher["pool"]))
    reverse_kl = kl_reference(np64(teacher["pool"]), np64(student["pool"]))
    assert abs(forward_kl - reverse_kl) > 1e-3
    assert_close(out["feat_kl"], forward_kl)


@pytest.mark.parametrize("shapes", [SHAPES_3D, SHAPES_2D], ids=["3d", "2d"])
def test_dual_action_is_eq4_with_multilevel_mae_and_gram(shapes):
    student, teacher = make_feats(10, shapes), make_feats(11, shapes)
    out = create_loss("dual_action")(student, TARGET, teacher)
    mae_levels, gram_levels = ["res2", "res3", "res4", "res5", "pool"], ["res2", "res3", "res4", "res5"]
    mae = sum(float(np.mean(np.abs(np64(student[k]) - np64(teacher[k])))) for k in mae_levels) / len(mae_levels)
    gram = sum(
        float(np.mean(np.abs(gram_reference(np64(student[k])) - gram_reference(np64(teacher[k]))))) for k in gram_levels
    ) / len(gram_levels)
    ce = ce_reference(np64(student["logits"]), TARGET)
    assert_close(out["mae"], mae)
    assert_close(out["gram"], gram)
    assert_close(out["loss"], ce + 50.0 * (mae + gram))
    weighted = create_loss("dual_action", gram_weight=10.0)(student, TARGET, teacher)  # the Gram term's own weight
    assert_close(weighted["loss"], ce + 50.0 * (mae + 10.0 * gram))
    assert_close(create_loss("dual_action", gram_weight=0.0)(student, TARGET, teacher)["loss"], ce + 50.0 * mae)


def test_dual_action_levels_are_configurable():
    student, teacher = make_feats(12), make_feats(13)
    out = create_loss("dual_action", alpha=1.0, mae_levels=["res5"], gram_levels=["res3"])(student, TARGET, teacher)
    assert_close(out["mae"], float(np.mean(np.abs(np64(student["res5"]) - np64(teacher["res5"])))))
    assert_close(
        out["gram"],
        float(np.mean(np.abs(gram_reference(np64(student["res3"])) - gram_reference(np64(teacher["res3"]))))),
    )


# ---- behaviour shared by the distillation losses -----------------------------------------------------


@pytest.mark.parametrize(
    "name,terms", [("mars", ["feat_mse"]), ("imrs", ["feat_mse", "feat_kl"]), ("dual_action", ["mae", "gram"])]
)
def test_distillation_terms_vanish_only_when_student_equals_teacher(name, terms):
    student = make_feats(14)
    same = create_loss(name)(student, TARGET, {k: v.clone() for k, v in student.items()})
    other = create_loss(name)(student, TARGET, make_feats(15))
    for term in terms:
        assert same[term].item() == pytest.approx(0.0, abs=1e-7)
        assert other[term].item() > 1e-4
    assert same["loss"].item() == pytest.approx(same["ce"].item(), rel=1e-6)


@pytest.mark.parametrize("name", ["mars", "imrs", "dual_action"])
def test_gradients_reach_the_student_never_the_teacher(name):
    student, teacher = make_feats(16, requires_grad=True), make_feats(17, requires_grad=True)
    create_loss(name)(student, TARGET, teacher)["loss"].backward()
    assert student["pool"].grad is not None and student["pool"].grad.abs().sum() > 0
    assert all(t.grad is None for t in teacher.values())


@pytest.mark.parametrize("name", ["mars", "imrs", "dual_action"])
def test_distillation_needs_a_matching_teacher(name):
    student = make_feats(18)
    with pytest.raises(ValueError, match="teacher"):
        create_loss(name)(student, TARGET)
    teacher = make_feats(19)
    teacher["pool"] = torch.randn(3, 12)
    with pytest.raises(ValueError, match="differ in shape"):
        create_loss(name)(student, TARGET, teacher)


def test_gram_is_computed_in_float32_under_autocast():
    x = make_feats(20)["res2"] * 50
    with torch.autocast("cpu", dtype=torch.bfloat16):
        g = gram_matrix(x.bfloat16())
    assert g.dtype == torch.float32
    assert np.allclose(g.numpy(), gram_reference(np64(x.bfloat16())), rtol=1e-5)
