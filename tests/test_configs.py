"""The job configs' vocabulary: every field says whether it is content, and only content is fingerprinted."""

from __future__ import annotations

import dataclasses

import pytest

from flowprep.cli_config import unclassified_fields
from flowprep.config import ExtractConfig
from flowprep.importer import ImportConfig

JOB_CONFIGS = {
    ExtractConfig: ExtractConfig(dataset="sample", out="/tmp/out"),
    ImportConfig: ImportConfig(root="/tmp/rawframes", lists=("train_list.txt",), out="/tmp/out"),
}


@pytest.mark.parametrize("cls", JOB_CONFIGS, ids=lambda cls: cls.__name__)
def test_every_field_says_whether_it_is_content(cls):
    unclassified = unclassified_fields(cls)
    assert not unclassified, (
        f"{cls.__name__} fields {unclassified} say neither content=True (it changes what lands in the shards: a "
        f"resumed run must agree on it) nor content=False: declare them with cli_config.option(..., content=...)"
    )


@pytest.mark.parametrize("cls", JOB_CONFIGS, ids=lambda cls: cls.__name__)
def test_the_fingerprint_changes_with_each_content_field_and_with_nothing_else(cls):
    base = JOB_CONFIGS[cls]
    changed = {
        "dataset": "hmdb51",
        "root": "/elsewhere",
        "annotations": "/ann",
        "split": "2",
        "partitions": ("train",),
        "limit": 3,
        "resize_mode": "short",
        "size_px": 128,
        "fps": 10.0,
        "frame_fps": 12.0,
        "max_frames": 9,
        "video_timeout_s": 5.0,
        "flow_backend": "opencv",
        "flow_params": (("warps", 3),),
        "bound_px": 15.0,
        "flow_jpeg_quality": 80,
        "rgb_jpeg_quality": 80,
        "videos_per_task": 4,
        "plan": "count",
        "shard_max_bytes": 2**20,
        "seed": 1,
        "workers": 2,
        "executor": "inline",
        "ray_address": "auto",
        "max_in_flight": 3,
        "threads_per_worker": 2,
        "task_memory_mb": 100,
        "task_retries": 1,
        "flow_actors": 1,
        "gpus_per_flow_actor": 0.5,
        "out": "/tmp/other",
        "lists": ("a_train.txt", "b_val.txt"),
        "label_map": "/labels.txt",
        "with_offset": True,
    }
    for f in dataclasses.fields(cls):
        if f.name not in changed:
            continue  # a field this test does not know yet: the classification test above still covers it
        other = dataclasses.replace(base, **{f.name: changed[f.name]})
        assert (other.content_fingerprint() != base.content_fingerprint()) == f.metadata["content"], f.name
