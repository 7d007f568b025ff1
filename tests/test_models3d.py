"""3D ResNet / ResNeXt family, CE / SE modules, 3D-ResNets checkpoint loading, freezing, late fusion."""

from __future__ import annotations

import math

import pytest
import torch

from training.models import create_model, list_models
from training.models.excitation import ChannelExcitation, SqueezeExcitation
from training.models.fusion import AttentionFusion, average_scores
from training.models.pretrained import load_3dresnets_checkpoint
from training.models.utils import count_parameters, freeze

# ---- parameter counts (issue 8: the IMRS / MARS tables) ------------------------------------------

IMRS_RESNEXT101_K400 = 48_340_816  # 3D-ResNeXt-101, 3-channel input, 400-class head: IMRS "48.34M"
STEM_ONE_INPUT_CHANNEL = 64 * 7 * 7 * 7  # conv1 weights per input channel: 21,952


def test_resnext101_matches_the_imrs_table():
    model = create_model("resnext3d_101", num_classes=400)
    assert count_parameters(model) == IMRS_RESNEXT101_K400
    assert round(count_parameters(model) / 1e6, 2) == 48.34


def test_resnext101_hmdb_head_flow_input_and_ce_modules():
    assert count_parameters(create_model("resnext3d_101", num_classes=51)) == 47_625_715
    # the head alone: 2048 features -> K classes, with bias
    assert IMRS_RESNEXT101_K400 - 47_625_715 == (2048 + 1) * (400 - 51)
    flow = create_model("resnext3d_101", num_classes=400, in_channels=2)
    assert count_parameters(flow) == IMRS_RESNEXT101_K400 - STEM_ONE_INPUT_CHANNEL == IMRS_RESNEXT101_K400 - 21_952
    ce = create_model("resnext3d_101", num_classes=400, attention="ce")
    assert count_parameters(ce) == IMRS_RESNEXT101_K400 + 4 * 3  # four k=3 convolutions, no bias


def test_se_overhead_matches_the_se_formula():
    stage_channels = [256, 512, 1024, 2048]  # ResNeXt-101 Res2..Res5 outputs
    r = 16
    # per SE block: FC C->C/r (weights + bias) then FC C/r->C (weights + bias)
    expected = sum(c * (c // r) + c // r + (c // r) * c + c for c in stage_channels)
    se = create_model("resnext3d_101", num_classes=400, attention="se")
    assert count_parameters(se) - IMRS_RESNEXT101_K400 == expected == 700_400


def test_resnext101_uses_the_3dresnets_key_layout():
    state = create_model("resnext3d_101", num_classes=400).state_dict()
    # ResNeXtBottleneck of 3D-ResNets: mid = 32 * planes/32, 3x3x3 in 32 groups, out = 2 * planes
    assert state["conv1.weight"].shape == (64, 3, 7, 7, 7)
    assert state["layer1.0.conv1.weight"].shape == (128, 64, 1, 1, 1)
    assert state["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1, 1)  # shortcut B projection
    assert state["layer1.0.downsample.1.running_mean"].shape == (256,)
    assert state["layer3.22.conv2.weight"].shape == (512, 16, 3, 3, 3)  # 23 blocks in Res4
    assert state["layer4.2.conv3.weight"].shape == (2048, 1024, 1, 1, 1)
    assert state["fc.weight"].shape == (400, 2048)
    assert "layer3.23.conv1.weight" not in state and "layer4.3.conv1.weight" not in state
    prefixes = {k.split(".")[0] for k in state}
    assert prefixes == {"conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"}


def test_shortcut_a_has_no_projection_parameters():
    a = create_model("resnet3d_18", num_classes=400, shortcut="A")
    b = create_model("resnet3d_18", num_classes=400, shortcut="B")
    # B adds a 1x1x1 conv + BN on entering Res3, Res4, Res5 (64->128, 128->256, 256->512)
    projections = [(64, 128), (128, 256), (256, 512)]  # conv weights + BN weight and bias
    assert count_parameters(b) - count_parameters(a) == sum(i * o + 2 * o for i, o in projections)


def test_shortcut_a_subsamples_and_zero_pads():
    from training.models.resnet3d import ZeroPadShortcut

    x = torch.randn(2, 3, 5, 6, 7)
    out = ZeroPadShortcut(out_channels=8, stride=2)(x)
    assert out.shape == (2, 8, 3, 3, 4)
    assert torch.equal(out[:, :3], x[:, :, 0::2, 0::2, 0::2]) and not out[:, 3:].any()
    model = create_model("resnet3d_tiny", num_classes=3, shortcut="A").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 4, 32, 32)).shape == (1, 3)


# ---- every registered model honours the contract on a tiny clip ----------------------------------


@pytest.mark.parametrize("name", list_models())
def test_registered_model_contract(name):
    """Flow input (2 channels), the less trodden path; RGB is the default everywhere else."""
    torch.manual_seed(0)
    in_channels = 2
    model = create_model(name, num_classes=5, in_channels=in_channels).eval()
    clip = torch.randn(1, in_channels, 4, 32, 32)
    with torch.no_grad():
        feats = model.forward_features(clip)
        logits = model(clip)
    assert set(feats) >= {"logits", "pool", "res2", "res3", "res4", "res5"}
    assert feats["logits"].shape == (1, 5) and torch.allclose(feats["logits"], logits)
    assert feats["pool"].dim() == 2 and feats["pool"].shape[0] == 1
    assert torch.isfinite(logits).all()
    assert model.sampling in ("consecutive", "segments")
    if model.sampling == "consecutive":  # 3D nets: stage outputs keep (B, C, T, H, W)
        assert all(feats[f"res{i}"].dim() == 5 and feats[f"res{i}"].shape[0] == 1 for i in range(2, 6))
        # "pool" is the global average of res5: the vector the fc sees
        assert torch.allclose(feats["pool"], feats["res5"].mean(dim=(2, 3, 4)), atol=1e-6)
        assert torch.allclose(feats["logits"], model.fc(feats["pool"]), atol=1e-6)


def test_wrong_input_layout_is_refused():
    model = create_model("resnet3d_tiny", num_classes=3, in_channels=2)
    with pytest.raises(ValueError, match=r"\(B, 2, T, H, W\)"):
        model(torch.randn(1, 3, 4, 32, 32))


def test_unknown_attention_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="ce, se"):
        create_model("resnet3d_tiny", num_classes=3, attention="cbam")


# ---- CE / SE modules ------------------------------------------------------------------------------


def test_ce_module_is_a_shared_3tap_conv_over_pooled_channels():
    torch.manual_seed(1)
    ce = ChannelExcitation(3)
    x = torch.randn(2, 6, 2, 3, 3)
    w = ce.conv.weight.detach().flatten().tolist()
    out = ce(x)
    for b in range(2):
        y = [x[b, c].mean().item() for c in range(6)]
        for i in range(6):
            left = y[i - 1] if i > 0 else 0.0  # zero padding at both ends of the channel axis
            right = y[i + 1] if i < 5 else 0.0
            eta = 1 / (1 + math.exp(-(w[0] * left + w[1] * y[i] + w[2] * right)))
            assert torch.allclose(out[b, i], x[b, i] * eta, atol=1e-6)


def test_se_block_matches_its_formula():
    torch.manual_seed(2)
    se = SqueezeExcitation(32, reduction=16)
    x = torch.randn(2, 32, 2, 3, 3)
    w1, b1 = se.fc[0].weight.detach(), se.fc[0].bias.detach()
    w2, b2 = se.fc[2].weight.detach(), se.fc[2].bias.detach()
    y = x.flatten(2).mean(-1)  # (2, 32)
    gate = torch.sigmoid(torch.clamp(y @ w1.T + b1, min=0) @ w2.T + b2)
    assert torch.allclose(se(x), x * gate[:, :, None, None, None], atol=1e-6)


def test_ce_sits_after_each_stage():
    torch.manual_seed(3)
    model = create_model("resnet3d_tiny", num_classes=3, attention="ce").eval()
    assert [type(m).__name__ for m in model.excite] == ["ChannelExcitation"] * 4
    stage_out = {}
    model.layer2.register_forward_hook(lambda m, i, o: stage_out.setdefault("layer2", o))
    with torch.no_grad():
        feats = model.forward_features(torch.randn(1, 3, 4, 32, 32))
    assert torch.allclose(feats["res3"], model.excite[1](stage_out["layer2"]))
    assert not torch.allclose(feats["res3"], stage_out["layer2"])


# ---- Kinetics checkpoints in the 3D-ResNets format ------------------------------------------------


def _save_3dresnets_checkpoint(model, path, drop_num_batches_tracked=False):
    """As 3D-ResNets / MARS save: a DataParallel state_dict (keys 'module.*') with arch and epoch."""
    state = {
        f"module.{k}": v.clone()
        for k, v in model.state_dict().items()
        if not (drop_num_batches_tracked and k.endswith("num_batches_tracked"))
    }
    torch.save({"arch": "resnet-10", "epoch": 200, "state_dict": state, "optimizer": {}}, path)


def test_kinetics_checkpoint_loads_into_a_flow_model_with_new_head(tmp_path):
    torch.manual_seed(4)
    kinetics = create_model("resnet3d_tiny", num_classes=400)
    for m in kinetics.modules():  # non-trivial BN statistics, so that loading them is visible
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.uniform_(-1, 1)
    path = tmp_path / "kinetics.pth"
    _save_3dresnets_checkpoint(kinetics, path, drop_num_batches_tracked=True)

    flow = create_model("resnet3d_tiny", num_classes=7, in_channels=2, attention="ce", pretrained=str(path))
    src, dst = kinetics.state_dict(), flow.state_dict()
    rgb_kernel = src["conv1.weight"]  # (8, 3, 7, 7, 7)
    mean_kernel = (rgb_kernel[:, 0] + rgb_kernel[:, 1] + rgb_kernel[:, 2]) / 3
    assert dst["conv1.weight"].shape == (8, 2, 7, 7, 7)
    assert torch.allclose(dst["conv1.weight"][:, 0], mean_kernel)
    assert torch.allclose(dst["conv1.weight"][:, 1], mean_kernel)
    for key in src:
        if not key.startswith(("conv1.", "fc.")) and not key.endswith("num_batches_tracked"):
            assert torch.equal(dst[key], src[key]), key
    assert dst["fc.weight"].shape == (7, 64)


def test_same_layout_checkpoint_reproduces_the_model(tmp_path):
    torch.manual_seed(5)
    source = create_model("resnet3d_tiny", num_classes=400).eval()
    path = tmp_path / "rgb.pth"
    _save_3dresnets_checkpoint(source, path)
    copy = create_model("resnet3d_tiny", num_classes=400)
    report = load_3dresnets_checkpoint(copy, path)
    assert report == {"adapted": [], "fresh": []}
    clip = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(copy.eval()(clip), source(clip))


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    path = tmp_path / "r18.pth"
    _save_3dresnets_checkpoint(create_model("resnet3d_18", num_classes=400), path)
    with pytest.raises(ValueError, match="shape mismatches"):
        create_model("resnet3d_tiny", num_classes=400, pretrained=str(path))
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        create_model("resnet3d_tiny", num_classes=400, pretrained=str(tmp_path / "nowhere.pth"))


# ---- frozen teacher -------------------------------------------------------------------------------


def test_freeze_makes_a_fixed_teacher():
    torch.manual_seed(6)
    teacher = freeze(create_model("resnet3d_tiny", num_classes=3, in_channels=2).train())
    student = create_model("resnet3d_tiny", num_classes=3)
    assert not teacher.training and all(not m.training for m in teacher.modules())
    assert count_parameters(teacher, trainable_only=True) == 0
    flow, rgb = torch.randn(2, 2, 4, 32, 32), torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        t1 = teacher.forward_features(flow)["pool"]
    stats_before = [b.clone() for b in teacher.buffers()]
    loss = ((student.forward_features(rgb)["pool"] - t1) ** 2).mean()
    loss.backward()
    with torch.no_grad():
        t2 = teacher.forward_features(flow)["pool"]
    assert torch.equal(t1, t2)  # eval-mode BN: same input, same output, running stats untouched
    assert all(torch.equal(a, b) for a, b in zip(stats_before, teacher.buffers()))
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for n, p in student.named_parameters() if not n.startswith("fc."))


# ---- late fusion ----------------------------------------------------------------------------------


def test_average_scores_is_the_mean_of_logits_or_of_softmax():
    torch.manual_seed(7)
    a, b = torch.randn(4, 5), torch.randn(4, 5)
    assert torch.allclose(average_scores([a, b]), (a + b) / 2)
    pa = torch.exp(a) / torch.exp(a).sum(1, keepdim=True)
    pb = torch.exp(b) / torch.exp(b).sum(1, keepdim=True)
    assert torch.allclose(average_scores([a, b], softmax=True), (pa + pb) / 2, atol=1e-6)
    with pytest.raises(ValueError, match="equal shape"):
        average_scores([a, torch.randn(4, 6)])


def test_attention_fusion_is_a_softmax_weighted_sum():
    torch.manual_seed(8)
    fusion = AttentionFusion(num_classes=5)
    a, b = torch.randn(3, 5), torch.randn(3, 5)
    fused = fusion([a, b])
    hidden = torch.cat([a, b], 1) @ fusion.fc1.weight.T + fusion.fc1.bias  # no non-linearity: "linear model"
    z = hidden @ fusion.fc2.weight.T + fusion.fc2.bias
    w = torch.exp(z) / torch.exp(z).sum(1, keepdim=True)
    assert fused.shape == (3, 5)
    assert torch.allclose(fused, w[:, :1] * a + w[:, 1:] * b, atol=1e-6)
    with torch.no_grad():  # equal weights reduce it to score averaging
        fusion.fc2.weight.zero_()
        fusion.fc2.bias.zero_()
    assert torch.allclose(fusion([a, b]), average_scores([a, b]), atol=1e-6)


def test_attention_fusion_learns_to_trust_the_informative_stream():
    gen = torch.Generator().manual_seed(9)
    target = torch.randint(0, 4, (256,), generator=gen)
    good = 4 * torch.nn.functional.one_hot(target, 4).float() + torch.randn(256, 4, generator=gen)
    noise = 4 * torch.randn(256, 4, generator=gen)
    torch.manual_seed(9)
    fusion = AttentionFusion(num_classes=4)
    opt = torch.optim.Adam(fusion.parameters(), lr=0.01)
    assert fusion.stream_weights([good, noise])[:, 0].mean() < 0.6  # starts near an even split
    for _ in range(50):
        loss = torch.nn.functional.cross_entropy(fusion([good, noise]), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert fusion.stream_weights([good, noise])[:, 0].mean() > 0.9
