"""Twins Training: the correlation loss against eq. 8-10 of the STM TPAMI paper written as loops, and
the two-view scheme running through every 2D model of the registry."""

from __future__ import annotations

import math

import pytest
import torch

from training.losses.twins import BETA, LAMBDA, augment_clips, correlation_loss, twin_views, twins_loss
from training.models import create_model, list_models

TINY_2D = [n for n in list_models() if n.split("_")[0] in ("tsn", "tsm", "action", "stm") and n.endswith("_tiny")]


def loop_correlation_loss(y_a: list[list[float]], y_b: list[list[float]], beta: float) -> float:
    """Eq. 8-9 with plain Python loops: C_ij = sum_n a_ni b_nj / (|a_:i| |b_:j|)."""
    batch, classes = len(y_a), len(y_a[0])
    norm_a = [math.sqrt(sum(y_a[n][i] ** 2 for n in range(batch))) for i in range(classes)]
    norm_b = [math.sqrt(sum(y_b[n][j] ** 2 for n in range(batch))) for j in range(classes)]
    loss = 0.0
    for i in range(classes):
        for j in range(classes):
            c_ij = sum(y_a[n][i] * y_b[n][j] for n in range(batch)) / (norm_a[i] * norm_b[j])
            loss += (1 - c_ij) ** 2 if i == j else beta * c_ij**2
    return loss


def loop_cross_entropy(logits: list[list[float]], target: list[int]) -> float:
    return sum(math.log(sum(math.exp(v) for v in row)) - row[t] for row, t in zip(logits, target)) / len(target)


def test_paper_hyperparameters():
    assert BETA == 0.0039 and LAMBDA == 0.01  # STM TPAMI Sec. 4.2


def test_correlation_loss_matches_loop_formula():
    g = torch.Generator().manual_seed(0)
    y_a, y_b = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(6, 4, generator=g, dtype=torch.float64)
    for beta in (BETA, 0.5):
        got = correlation_loss(y_a, y_b, beta)["cor"].item()
        assert got == pytest.approx(loop_correlation_loss(y_a.tolist(), y_b.tolist(), beta), rel=1e-6)


def test_twins_loss_matches_eq10():
    g = torch.Generator().manual_seed(1)
    y_a, y_b = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    target = torch.tensor([0, 2, 1, 1, 0])
    out = twins_loss({"logits": y_a}, target, student2={"logits": y_b})
    ce_a, ce_b = loop_cross_entropy(y_a.tolist(), target.tolist()), loop_cross_entropy(y_b.tolist(), target.tolist())
    cor = loop_correlation_loss(y_a.tolist(), y_b.tolist(), 0.0039)
    assert out["ce_a"].item() == pytest.approx(ce_a, rel=1e-5)
    assert out["ce_b"].item() == pytest.approx(ce_b, rel=1e-5)
    assert out["cor"].item() == pytest.approx(cor, rel=1e-5)
    assert out["loss"].item() == pytest.approx((ce_a + ce_b) / 2 + 0.01 * cor, rel=1e-5)
    assert out["loss"].dim() == 0


def test_correlation_terms_at_their_optima():
    # Identical views whose class columns are orthogonal: C is the identity, so both terms vanish.
    y = torch.tensor([[2.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 3.0], [0.0, 0.0, 0.0]])
    terms = correlation_loss(y, y)
    assert terms["cor_on_diag"].item() == pytest.approx(0.0, abs=1e-7)
    assert terms["cor_off_diag"].item() == pytest.approx(0.0, abs=1e-7)
    # Columns that are all the same: every C_ij = 1, so the off-diagonal term counts K(K-1) = 6.
    same = torch.ones(4, 3) * torch.tensor([[1.0], [2.0], [-1.0], [0.5]])
    assert correlation_loss(same, same)["cor_off_diag"].item() == pytest.approx(6.0, rel=1e-6)


def test_mismatched_views_are_refused():
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(4, 2\)"):
        correlation_loss(torch.randn(4, 3), torch.randn(4, 2))


def test_views_share_one_draw_across_frames():
    g = torch.Generator().manual_seed(0)
    frame = torch.rand(2, 3, 1, 16, 16, generator=g)
    clips = frame.expand(-1, -1, 4, -1, -1).contiguous()  # every frame identical
    view_a, view_b = twin_views(clips, generator=g)
    assert view_a.shape == clips.shape and view_b.shape == clips.shape
    for view in (view_a, view_b):
        torch.testing.assert_close(view, view[:, :, :1].expand_as(view))  # frames still identical
    assert not torch.allclose(view_a, view_b)  # the two views are different distortions


def test_views_keep_normalised_inputs_normalised_and_flow_untouched_by_colour():
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    clips01 = torch.full((1, 3, 2, 8, 8), 0.5)
    normalised = (clips01 - torch.tensor(mean).view(1, 3, 1, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1, 1)
    g = torch.Generator().manual_seed(3)
    view, _ = twin_views(normalised, generator=g, mean=mean, std=std)
    undone = view * torch.tensor(std).view(1, 3, 1, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1, 1)
    assert undone.min() >= -1e-5 and undone.max() <= 1 + 1e-5  # colour ops ran in [0, 1] space
    # The flowprep loader's RGB: pixels 0..255 minus a mean, no std.
    loader_mean = (114.8, 107.7, 99.6)
    pixels = torch.rand(2, 3, 2, 8, 8, generator=g) * 255
    view, _ = twin_views(
        pixels - torch.tensor(loader_mean).view(1, 3, 1, 1, 1), generator=g, mean=loader_mean, pixel_max=255
    )
    undone = view + torch.tensor(loader_mean).view(1, 3, 1, 1, 1)
    assert undone.min() >= -1e-3 and undone.max() <= 255 + 1e-3 and undone.max() > 100
    flow = torch.full((2, 2, 3, 8, 8), -0.25)  # spatially constant 2-channel flow: crop/flip keep it
    view_a, view_b = twin_views(flow, generator=g)
    torch.testing.assert_close(view_a, flow)
    torch.testing.assert_close(view_b, flow)
    varying_flow = torch.randn(2, 2, 3, 8, 8, generator=g)  # spatial=False: the loader already cropped
    view_a, _ = twin_views(varying_flow, generator=g, spatial=False)
    torch.testing.assert_close(view_a, varying_flow)


def test_loop_colour_ops_leave_the_loaders_crops_in_place():
    # `flowprep-train twins`: loader RGB (pixels 0..255 minus a mean), colour ops only (spatial=False).
    mean = torch.tensor((114.8, 107.7, 99.5)).view(1, 3, 1, 1, 1)
    pixels = torch.full((6, 3, 2, 8, 8), 50.0)
    pixels[..., 4:] = 200.0  # gray frames, bright right half
    out = (
        augment_clips(
            pixels - mean,
            torch.Generator().manual_seed(0),
            mean=tuple(mean.flatten().tolist()),
            pixel_max=255,
            spatial=False,
        )
        + mean
    )
    assert (out[..., 4:] >= out[..., :4] - 1e-3).all()  # no crop, no flip: the bright half stays right
    assert out.min() >= -1e-3 and out.max() <= 255 + 1e-3
    changed = [not torch.allclose(o, p, atol=1) for o, p in zip(out, pixels)]
    assert any(changed)  # colour jitter (p = 0.8 per clip) changed some clips


@pytest.mark.parametrize("name", TINY_2D)
def test_twins_training_step_with_every_2d_model(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=3)
    clips = torch.rand(3, 3, 8, 16, 16)  # 16 px still leaves res5 a 1x1 map
    target = torch.tensor([0, 1, 2])
    view_a, view_b = twin_views(clips, generator=torch.Generator().manual_seed(0))
    out = twins_loss(model.forward_features(view_a), target, student2=model.forward_features(view_b))
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    assert model.fc.weight.grad is not None and model.fc.weight.grad.abs().sum() > 0
    assert model.backbone.conv1.weight.grad.abs().sum() > 0


def test_registry_entry():
    from training.losses import create_loss

    loss_fn = create_loss("twins", beta=0.5, lam=2.0)
    y_a, y_b = torch.randn(4, 3), torch.randn(4, 3)
    target = torch.tensor([0, 1, 2, 0])
    out = loss_fn({"logits": y_a}, target, student2={"logits": y_b})
    cor = loop_correlation_loss(y_a.tolist(), y_b.tolist(), 0.5)
    assert out["loss"].item() == pytest.approx(out["ce"].item() + 2.0 * cor, rel=1e-5)
    with pytest.raises(ValueError, match="lam=-1"):
        create_loss("twins", lam=-1)


def test_each_view_is_its_own_batchnorm_batch_and_each_rank_its_own_jitter():
    """STM 3.5 feeds the two distortions as two batches through the shared net; ranks draw apart."""
    from training.loops import Features
    from training.models import create_model
    from training.train import jitter_seed

    torch.manual_seed(0)
    model = create_model("tsn_tiny", num_classes=3, dropout=0.0).train()  # BatchNorm on batch statistics
    first, second = torch.randn(2, 3, 2, 16, 16), torch.randn(2, 3, 2, 16, 16) * 3 + 1
    both = Features(model)(torch.cat([first, second]), views=2)["logits"]
    apart = torch.cat([model.forward_features(first)["logits"], model.forward_features(second)["logits"]])
    joint = model.forward_features(torch.cat([first, second]))["logits"]
    assert torch.allclose(both, apart, atol=1e-6) and not torch.allclose(both, joint, atol=1e-3)
    seeds = {jitter_seed(0, epoch, rank) for epoch in range(3) for rank in range(4)}
    assert len(seeds) == 12  # every (epoch, rank) draws its own colour jitter
