"""What a run reads: class names from the extractor's manifest, and loaders over the selected videos."""

from __future__ import annotations

import contextlib

from .data import ClipSpec, HeldOut, ShardClipDataset, make_loader, shard_urls


def dataset_classes(data: str) -> list[str]:
    """Class names by label, from the extractor's manifest.parquet."""
    import fsspec

    from flowprep.manifest import table_from_parquet_bytes

    url = f"{data.rstrip('/')}/manifest.parquet"
    try:
        with fsspec.open(url, "rb") as f:
            table = table_from_parquet_bytes(f.read(), url, columns=["label", "class_name"]).to_pylist()
    except FileNotFoundError:
        raise FileNotFoundError(f"{url} not found: pass --num-classes") from None
    names = {row["label"]: row["class_name"] for row in table if row["label"] is not None and row["label"] >= 0}
    return [names.get(i, str(i)) for i in range(max(names) + 1)]


def class_names(data: str, num_classes: int) -> list[str]:
    if num_classes:
        with contextlib.suppress(FileNotFoundError):
            names = dataset_classes(data)
            if len(names) == num_classes:
                return names
        return [str(i) for i in range(num_classes)]
    return dataset_classes(data)


def has_partition(data: str, partition: str) -> bool:
    """Whether the flowprep output folder `data` lists shards of `partition` ('<partition>.shards.txt')."""
    import fsspec

    from flowprep.format import SHARD_LIST_SUFFIX

    fs, path = fsspec.core.url_to_fs(f"{data.rstrip('/')}/{partition}{SHARD_LIST_SUFFIX}")
    return fs.exists(path)


def loader_for(
    cfg,
    partitions: tuple[str, ...],
    split_name: str,
    spec: ClipSpec,
    epoch_samples: int = 0,
    buffer_size: int = 0,
    pin: bool = False,
    held_out: HeldOut | None = None,
):
    """(dataset, DataLoader) over the videos of `partitions` whose splits[cfg.split] is `split_name` (and
    that `held_out` keeps, when given)."""
    urls = shard_urls(cfg.data, list(partitions))
    ds = ShardClipDataset(
        urls,
        spec,
        split=cfg.split,
        split_name=split_name,
        seed=cfg.seed,
        epoch_samples=epoch_samples,
        buffer_size=buffer_size,
        held_out=held_out,
    )
    return ds, make_loader(ds, cfg.batch_size, cfg.workers, pin_memory=pin)


def test_loader(
    cfg,
    modalities: tuple[str, ...],
    sampling: str,
    partitions: tuple[str, ...],
    split_name: str,
    train: bool = False,
    train_crop: str = "center",
):
    """The test protocol's loader: centre crops (or cfg.test_crops), cfg.test_clips clips per video, boxes at
    the scale of `train_crop` (the crop mode the checkpoint was trained with)."""
    spec = ClipSpec(
        modalities=modalities,
        frames=cfg.frames,
        sampling=sampling,
        train=train,
        crop_size=cfg.crop_size,
        crop=train_crop,
        flip=False,
        test_clips=getattr(cfg, "test_clips", 1),
        test_crops=getattr(cfg, "test_crops", 1),
    )
    return loader_for(cfg, partitions, split_name, spec, buffer_size=16 if train else 0)


def no_clips_message(data: str, partitions: tuple[str, ...], split: str, split_name: str, what: str) -> str:
    return (
        f"no {what} clips in {data}: no video of partitions {','.join(partitions)!r} has splits[{split!r}] == "
        f"{split_name!r} (or every sample was bad); check --split and the partition / split-name flags"
    )
