"""`fuse(cfg)`: two frozen streams fused by score averaging or by the attention fusion module (paper 002)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from . import checkpoint
from .config import FuseConfig, FusionMethod, write_config
from .distributed import autocast, setup_distributed
from .evaluate import scored_or_raise, what_was_tested, write_results
from .inputs import test_loader
from .loops import clip_logits
from .metrics import score_metrics
from .normalize import model_input


def train_fusion(fusion, streams: dict, loader, dataset, cfg: FuseConfig, device: torch.device) -> list[dict]:
    """The fusion module's epochs over the frozen streams' scores; returns the loss per epoch."""
    optimizer = torch.optim.SGD(fusion.parameters(), lr=cfg.lr, momentum=0.9)
    history = []
    for epoch in range(cfg.epochs):  # streams frozen: only the fusion module learns
        dataset.set_epoch(epoch)
        loss_sum = n = 0.0
        for batch in loader:
            with torch.no_grad(), autocast(device, cfg.precision):
                scores = [m(model_input(batch, mod, device)).float() for m, mod in streams.values()]
            loss = F.cross_entropy(fusion(scores), batch["label"].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum, n = loss_sum + float(loss.detach()) * len(scores[0]), n + len(scores[0])
        history.append({"epoch": epoch, "fusion_loss": loss_sum / max(n, 1)})
    fusion.eval()
    return history


def fuse(cfg: FuseConfig) -> dict:
    """Writes OUT/results.json (each stream and the fusion), confusion.png, fusion.pt (attention), config.json."""
    from .models.fusion import AttentionFusion, average_scores

    device, rank, _ = setup_distributed(cfg.device)
    (model_a, cfg_a, ckpt_a), (model_b, cfg_b, ckpt_b) = (
        checkpoint.load_trained(p, device) for p in (cfg.checkpoint_a, cfg.checkpoint_b)
    )
    num_classes = ckpt_a["num_classes"]
    if ckpt_b["num_classes"] != num_classes:
        raise ValueError(f"streams disagree on classes: {num_classes} vs {ckpt_b['num_classes']}")
    if model_a.sampling != model_b.sampling:
        raise ValueError(f"streams sample clips differently: {model_a.sampling} vs {model_b.sampling}")
    if (cfg_a.crop == "multiscale_corner") != (cfg_b.crop == "multiscale_corner"):
        raise ValueError(
            f"streams were trained at different crop scales ({cfg_a.crop} vs {cfg_b.crop}): "
            "one test crop cannot match both"
        )
    streams = {"a": (model_a, cfg_a.modality), "b": (model_b, cfg_b.modality)}
    modalities = tuple(sorted({cfg_a.modality, cfg_b.modality}, key=["rgb", "flow"].index))
    checkpoint.seed_everything(cfg.seed)
    fusion, history = None, []
    if cfg.method == FusionMethod.ATTENTION:
        fusion = AttentionFusion(num_classes).to(device)
        train_ds, train_loader = test_loader(
            cfg,
            modalities,
            model_a.sampling,
            cfg.train_partitions,
            cfg.train_split_name,
            train=True,
            train_crop=cfg_a.crop,
        )
        history = train_fusion(fusion, streams, train_loader, train_ds, cfg, device)
    dataset, loader = test_loader(
        cfg, modalities, model_a.sampling, cfg.partitions, cfg.split_name, train_crop=cfg_a.crop
    )
    scored = scored_or_raise(clip_logits(streams, loader, device, cfg.precision), cfg)
    la, lb = scored["logits"]["a"], scored["logits"]["b"]
    with torch.no_grad():
        fused = fusion([la.to(device), lb.to(device)]).cpu() if fusion else average_scores([la, lb])
    results = {
        name: {
            k: v
            for k, v in score_metrics(scored["keys"], scored["labels"], logits, num_classes).items()
            if k.endswith(("top1", "top5"))
        }
        for name, logits in (("stream_a", la), ("stream_b", lb))
    }
    fused_metrics = score_metrics(scored["keys"], scored["labels"], fused, num_classes)
    results.update(fused_metrics, method=cfg.method.value, fusion_history=history, bad_samples=scored["bad_samples"])
    results["tested"] = what_was_tested(cfg, dataset.spec.protocol, results)
    results.pop("video_keys")
    if rank != 0:
        return results
    out = Path(cfg.out)
    write_config(cfg, out)
    if fusion is not None:
        torch.save(fusion.state_dict(), out / "fusion.pt")
    return write_results(
        out,
        results,
        ckpt_a.get("class_names") or [str(i) for i in range(num_classes)],
        f"{cfg.method} fusion, video top-1 {fused_metrics['video_top1']:.3f}",
    )
