"""Dataset catalogs: every registry entry on a tiny tree of its own layout, and the real split files."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from flowprep.datasets import DATASETS, load_catalog
from tests.conftest import shared_path


def touch(path: Path, data: bytes = b"x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def tree_ucf101(root: Path) -> tuple[str, str | None]:
    ann = root / "ucfTrainTestlist"
    touch(ann / "classInd.txt", b"1 ApplyEyeMakeup\r\n2 HandstandPushups\r\n")
    for s in "123":
        touch(
            ann / f"trainlist0{s}.txt",
            b"ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\r\nHandstandPushups/v_HandStandPushups_g08_c01.avi 2\r\n",
        )
        touch(
            ann / f"testlist0{s}.txt",
            b"ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\r\nHandstandPushups/v_HandStandPushups_g01_c01.avi\r\n",
        )
    for rel in (
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi",
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
        # the archive's folder case differs from the lists' (a real UCF101 quirk)
        "HandstandPushups/v_HandStandPushups_g08_c01.avi",
        "ApplyEyeMakeup/v_extra_not_in_lists.avi",
    ):
        touch(root / "UCF-101" / rel)
    return str(root), None  # v_HandStandPushups_g01_c01 is listed but missing


def tree_hmdb51(root: Path) -> tuple[str, str | None]:
    ann = root / "testTrainMulti_7030_splits"
    for cls in ("brush_hair", "cartwheel"):
        for s in "123":
            touch(ann / f"{cls}_test_split{s}.txt", f"{cls}_a.avi 1 \n{cls}_b.avi 2 \n{cls}_c.avi 0 \n".encode())
        for v in "abc":
            if (cls, v) != ("cartwheel", "c"):
                touch(root / cls / f"{cls}_{v}.avi")
    touch(root / "cartwheel" / "cartwheel_unlisted.avi")
    return str(root), None


def tree_kinetics400(root: Path) -> tuple[str, str | None]:
    touch(
        root / "ann" / "kinetics-400_val.csv",
        b'label,youtube_id,time_start,time_end,split,is_cc\n"arm wrestling",AAAAAAAAAAA,5,15,val,0\n'
        b"abseiling,BBBBBBBBBBB,0,10,val,0\nabseiling,CCCCCCCCCCC,1,11,val,0\n",
    )
    touch(root / "ann" / "train.csv", b"label,youtube_id,time_start,time_end,split\nabseiling,DDDDDDDDDDD,3,13,train\n")
    touch(root / "videos" / "arm wrestling" / "AAAAAAAAAAA_000005_000015.mp4")
    touch(root / "videos" / "BBBBBBBBBBB_000000_000010.mp4")  # flat layout works too
    touch(root / "videos" / "abseiling" / "DDDDDDDDDDD_000003_000013.mp4")
    return str(root / "videos"), str(root / "ann")  # CCCCCCCCCCC is missing


def tree_kinetics600(root: Path) -> tuple[str, str | None]:
    touch(
        root / "kinetics-600_val.csv",
        b"label,youtube_id,time_start,time_end,split\nabseiling,AAAAAAAAAAA,5,15,val\n"
        b"acting in play,BBBBBBBBBBB,0,10,val\n",
    )
    touch(root / "kinetics-600_test.csv", b"youtube_id,time_start,time_end,split\nCCCCCCCCCCC,1,11,test\n")
    touch(root / "abseiling" / "AAAAAAAAAAA_000005_000015.mp4")
    touch(root / "CCCCCCCCCCC_000001_000011.mp4")
    return str(root), None  # BBBBBBBBBBB is missing


def tree_kinetics700(root: Path) -> tuple[str, str | None]:
    touch(
        root / "ann" / "kinetics-700_validate.csv",
        b"label,youtube_id,time_start,time_end,split\ntestifying,---QUuC4vJs,84,94,validate\n",
    )
    touch(root / "ann" / "label_map_k700.txt", b"abseiling\ntestifying\n")
    touch(root / "v" / "testifying" / "---QUuC4vJs_000084_000094.mp4")
    touch(root / "v" / "unlisted_000000_000010.mp4")
    return str(root / "v"), str(root / "ann")


def tree_sthv2(root: Path) -> tuple[str, str | None]:
    touch(
        root / "something-something-v2-labels.json",
        b'{"Closing something": "1", "Putting something onto something": "0"}',
    )
    touch(
        root / "something-something-v2-train.json",
        b'[{"id": "11", "label": "closing a box", "template": "Closing [something]", "placeholders": ["a box"]}]',
    )
    touch(
        root / "something-something-v2-validation.json",
        b'[{"id": "22", "template": "Putting [something] onto [something]"},'
        b' {"id": "33", "template": "Closing [something]"}]',
    )
    touch(root / "something-something-v2-test.json", b'[{"id": "44"}]')
    for video_id in ("11", "22", "44", "55"):
        touch(root / f"{video_id}.webm")
    return str(root), None  # 33 is missing, 55 in no list


def tree_frame_folders(root: Path, prefix: str) -> tuple[str, str | None]:
    touch(root / f"{prefix}-labels.csv", b"Swiping Left\nThumb Up\n")
    touch(root / f"{prefix}-train.csv", b"1;Thumb Up\n2;Swiping Left\n")
    touch(root / f"{prefix}-validation.csv", b"3;Thumb Up\n")
    touch(root / f"{prefix}-test.csv", b"4\n")
    for video_id in ("1", "2", "4", "5"):
        touch(root / "frames" / video_id / "00001.jpg")
    return str(root / "frames"), str(root)  # 3 is missing, 5 in no list


def tree_sthv1(root: Path) -> tuple[str, str | None]:
    return tree_frame_folders(root, "something-something-v1")


def tree_jester(root: Path) -> tuple[str, str | None]:
    return tree_frame_folders(root, "jester-v1")


def tree_folder(root: Path) -> tuple[str, str | None]:
    for rel in ("b_class/one.mp4", "b_class/two.avi", "a_class/three.mkv", "a_class/notes.txt"):
        touch(root / rel)
    return str(root), None


def tree_sample(root: Path) -> tuple[str, str | None]:
    return str(root), None


# name -> (builder, expected number of catalog items, expected problems, expected unsplit)
TREES = {
    "ucf101": (tree_ucf101, 5, 1, 1),
    "hmdb51": (tree_hmdb51, 7, 1, 1),
    "kinetics400": (tree_kinetics400, 4, 1, 0),
    "kinetics600": (tree_kinetics600, 3, 1, 0),
    "kinetics700": (tree_kinetics700, 2, 0, 1),
    "sthv2": (tree_sthv2, 5, 1, 1),
    "sthv1": (tree_sthv1, 5, 1, 1),
    "jester": (tree_jester, 5, 1, 1),
    "folder": (tree_folder, 4, 0, 0),
    "sample": (tree_sample, None, 0, 0),
}


def test_every_registered_dataset_has_a_tree_here():
    assert set(TREES) == set(DATASETS), "a new dataset needs a tiny tree in TREES so the tests below cover it"


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_catalog_contract(name, tmp_path):
    build, n_items, n_problems, n_unsplit = TREES[name]
    root, annotations = build(tmp_path)
    catalog = load_catalog(name, root, annotations)
    if n_items is not None:
        assert len(catalog.items) == n_items
    assert len(catalog.problems()) == n_problems
    assert len(catalog.unsplit()) == n_unsplit
    assert len({i.rel_path for i in catalog.items}) == len(catalog.items), "a video listed twice"
    for item in catalog.items:
        if item.label >= 0:
            assert catalog.classes[item.label] == item.class_name
        if item.problem:
            assert item.problem.startswith("missing") and item.rel_path in item.problem
        elif item.splits or name != "folder":
            assert not item.splits or set(item.splits.values()) <= {"train", "test", "unused", "val", "all"}
            assert (Path(root) / item.rel_path).exists()


def test_ucf101_case_mismatch_and_labels(tmp_path):
    root, _ = tree_ucf101(tmp_path)
    catalog = load_catalog("ucf101", root)
    by_id = {i.video_id: i for i in catalog.items}
    found = by_id["v_HandStandPushups_g08_c01"]
    assert not found.problem and found.label == 1 and found.splits == {"1": "train", "2": "train", "3": "train"}
    assert by_id["v_ApplyEyeMakeup_g01_c01"].splits["1"] == "test"
    assert by_id["v_extra_not_in_lists"].splits == {}


def test_folder_split_2_is_deterministic_train_test_by_path(tmp_path):
    for i in range(40):
        touch(tmp_path / "a" / f"v{i:02d}.mp4")
    (tmp_path / "b" / "frames_video").mkdir(parents=True)  # a frame folder is a video too
    before = {i.rel_path: i.splits["2"] for i in load_catalog("folder", str(tmp_path)).items}
    assert Counter(before.values())["test"] in range(4, 21)  # about 30% of 41
    touch(tmp_path / "a" / "new_video.mp4")
    after = {i.rel_path: i.splits["2"] for i in load_catalog("folder", str(tmp_path)).items}
    assert {rel: after[rel] for rel in before} == before  # adding a video moves no other
    kinds = {i.rel_path: i.kind for i in load_catalog("folder", str(tmp_path)).items}
    assert kinds["b/frames_video"] == "frames" and kinds["a/v00.mp4"] == "video"


def test_folder_with_mmaction2_video_lists(tmp_path):
    for rel in ("jump/j1.mp4", "jump/j2.mp4", "run/r1.mp4", "run/r_unlisted.mp4"):
        touch(tmp_path / "videos" / rel)
    touch(tmp_path / "lists" / "mine_train_list_videos.txt", b"jump/j1.mp4 1\nrun/r1.mp4 0\n")
    touch(tmp_path / "lists" / "mine_val_list_videos.txt", b"jump/j2.mp4 1\njump/gone.mp4 1\n")
    catalog = load_catalog("folder", str(tmp_path / "videos"), str(tmp_path / "lists"))
    by_rel = {i.rel_path: i for i in catalog.items}
    assert catalog.classes == ("run", "jump")  # the lists' labels, not the sorted folder names
    assert by_rel["jump/j1.mp4"].splits == {"1": "train"} and by_rel["jump/j1.mp4"].label == 1
    assert by_rel["jump/j2.mp4"].splits == {"1": "val"}
    assert (
        by_rel["jump/gone.mp4"].problem.startswith("missing")
        and "mine_val_list_videos.txt" in by_rel["jump/gone.mp4"].problem
    )
    assert [i.rel_path for i in catalog.unsplit()] == ["run/r_unlisted.mp4"]
    real = shared_path("annotations", "mmaction2_lists", "video_test_list.txt")
    with pytest.raises(
        ValueError, match="video_test_list.txt:2: test.mp4 is listed twice"
    ):  # MMAction2's fixture repeats it
        load_catalog("folder", str(tmp_path / "videos"), str(real))
    with pytest.raises(ValueError, match="video_test_list_multi_label.txt:1: expected `path label`"):
        load_catalog("folder", str(tmp_path / "videos"), str(real.parent / "video_test_list_multi_label.txt"))


def test_readme_dataset_table_lists_every_catalog():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme[readme.index("| dataset | layout") :].split("\n\n")[0]
    for name in DATASETS:
        assert f"`{name}`" in table, f"README's dataset table has no row for {name}"


def test_unknown_dataset_lists_the_valid_ones():
    with pytest.raises(ValueError, match="ucf101.*hmdb51"):
        load_catalog("ucf-101", ".")


# ---- the official split files (../shared/data/annotations), counts from its README -------------


def test_real_ucf101_splits_parse_to_the_official_counts(tmp_path):
    ann = shared_path("annotations", "ucf101", "ucfTrainTestlist")
    catalog = load_catalog("ucf101", str(tmp_path), str(ann))
    assert len(catalog.classes) == 101 and len(catalog.items) == 13320
    assert Counter(i.splits["1"] for i in catalog.items) == {"train": 9537, "test": 3783}
    for split in "123":
        assert sum(split in i.splits for i in catalog.items) == 13320
    assert all(i.problem.startswith("missing") for i in catalog.items)  # no videos in tmp_path
    assert {i.label for i in catalog.items} == set(range(101))


def test_real_hmdb51_splits_parse_to_the_official_counts(tmp_path):
    ann = shared_path("annotations", "hmdb51", "testTrainMulti_7030_splits")
    catalog = load_catalog("hmdb51", str(tmp_path), str(ann))
    assert len(catalog.classes) == 51 and len(catalog.items) == 6766
    for split in "123":
        assert Counter(i.splits[split] for i in catalog.items) == {"train": 3570, "test": 1530, "unused": 1666}
    mmaction_order = shared_path("annotations", "hmdb51", "mmaction2_label_map.txt").read_text().split()
    assert list(catalog.classes) == mmaction_order


def test_real_kinetics_csvs_both_schemas(tmp_path):
    base = shared_path("annotations", "kinetics400")
    for csv_name, rows, partition in (
        ("kinetics-400_val.csv", 19906, "val"),
        ("kinetics400_2018_validate.head200.csv", 200, "val"),
        ("kinetics-400_test.head200.csv", 200, "test"),
    ):
        catalog = load_catalog("kinetics400", str(tmp_path), str(base / csv_name))
        assert len(catalog.items) == rows
        assert {i.splits["1"] for i in catalog.items} == {partition}
    val = load_catalog("kinetics400", str(tmp_path), str(base / "kinetics-400_val.csv"))
    assert len(val.classes) == 400 and "arm wrestling" in val.classes  # quoted multi-word labels
    assert val.items[0].rel_path.endswith(".mp4") and len(val.items[0].video_id) == 11 + 14


def test_real_kinetics600_and_700_csvs_with_their_label_maps(tmp_path):
    for version, val_name, classes in (
        (600, "kinetics-600_val.head200.csv", 600),
        (700, "kinetics-700_validate.head200.csv", 700),
    ):
        base = shared_path("annotations", f"kinetics{version}")
        catalog = load_catalog(f"kinetics{version}", str(tmp_path), str(base))  # both CSVs + the label map
        label_map = (base / f"mmaction2_label_map_k{version}.txt").read_text().splitlines()
        assert list(catalog.classes) == label_map and len(catalog.classes) == classes
        assert Counter(i.splits["1"] for i in catalog.items) == {"val": 200, "test": 200}
        assert all(i.label >= 0 for i in catalog.items if i.splits["1"] == "val")
        assert all(i.label == -1 for i in catalog.items if i.splits["1"] == "test")
        assert len(load_catalog(f"kinetics{version}", str(tmp_path), str(base / val_name)).items) == 200


def test_real_sthv2_lists_parse_to_exact_counts(tmp_path):
    base = shared_path("annotations", "sthv2")
    catalog = load_catalog("sthv2", str(tmp_path), str(base))
    assert len(catalog.classes) == 174
    assert list(catalog.classes) == (base / "mmaction2_label_map.txt").read_text().splitlines()
    assert Counter(i.splits["1"] for i in catalog.items) == {"val": 200, "test": 200}
    by_id = {i.video_id: i for i in catalog.items}
    first = by_id["74225"]  # "Spinning [something] that quickly stops spinning"
    assert first.class_name == "Spinning something that quickly stops spinning"
    assert catalog.classes[first.label] == first.class_name and first.rel_path == "74225.webm"
    assert all(i.label == -1 for i in catalog.items if i.splits["1"] == "test")


@pytest.mark.parametrize(
    "name, prefix, classes, test_videos",
    [("sthv1", "something-something-v1", 174, 10960), ("jester", "jester-v1", 27, 14743)],
)
def test_real_20bn_csvs_parse_to_exact_counts(name, prefix, classes, test_videos, tmp_path):
    base = shared_path("annotations", name)
    catalog = load_catalog(name, str(tmp_path), str(base))
    assert len(catalog.classes) == classes
    assert list(catalog.classes) == (base / "mmaction2_label_map.txt").read_text().splitlines()
    assert Counter(i.splits["1"] for i in catalog.items) == {"train": 200, "val": 200, "test": test_videos}
    assert all(i.kind == "frames" and i.problem.startswith("missing") for i in catalog.items)
    assert catalog.frame_fps == 12
    train = [i for i in catalog.items if i.splits["1"] == "train"]
    assert all(catalog.classes[i.label] == i.class_name for i in train)
    first_line = (base / f"{prefix}-train.head200.csv").read_text().splitlines()[0]
    assert f"{train[0].video_id};{train[0].class_name}" == first_line


def test_sample_catalog_lists_a_tree_generated_with_other_settings(tmp_path):
    from flowprep.datasets.sample import CLASSES, generate

    generate(tmp_path, videos_per_class=2, frames=3, size_px=16)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.avi")}
    catalog = load_catalog("sample", str(tmp_path))
    assert len(catalog.items) == 2 * len(CLASSES)
    assert all((tmp_path / item.rel_path).is_file() for item in catalog.items)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.avi")} == before  # not regenerated


def moved_error(frame_a: np.ndarray, frame_b: np.ndarray, dx: float, dy: float, border: int = 8) -> float:
    """Mean |frame_b(p) - frame_a(p - d)| in grey levels, away from the borders: small when frame_b is
    frame_a with its content moved by d = (dx, dy) px."""
    import cv2

    moved = cv2.warpAffine(frame_a, np.float32([[1, 0, dx], [0, 1, dy]]), frame_a.shape[1::-1], flags=cv2.INTER_LINEAR)
    inner = (slice(border, -border), slice(border, -border))
    return float(np.abs(moved[inner].astype(np.float32) - frame_b[inner]).mean())


@pytest.mark.parametrize("motion", ["constant", "varying"])
@pytest.mark.parametrize("class_name", ["drift_right", "drift_left", "drift_down", "drift_up"])
def test_sample_moves_along_its_class(class_name, motion):
    from flowprep.datasets.sample import _DIRECTION_XY, render_video, speed_profile

    video = render_video(np.random.default_rng(3), class_name, frames=24, size_px=96, motion=motion)
    speed_px = speed_profile(np.random.default_rng(3), motion, 24)  # the same first draws: the true speeds
    direction_x, direction_y = _DIRECTION_XY[class_name]
    for t in range(len(video) - 1):
        d = speed_px[t]
        along = moved_error(video[t], video[t + 1], d * direction_x, d * direction_y)
        against = moved_error(video[t], video[t + 1], -d * direction_x, -d * direction_y)
        # content moves the way the class name says, by the generator's speed; the other way is far off
        assert along < 2.0 and against > 3 * along, (t, along, against)
    if motion == "varying":
        assert speed_px.max() > 1.5 * speed_px.min()  # the speed swings within the video (swing >= 0.3)
    else:
        assert speed_px.min() == speed_px.max()


def test_sample_split_2_trains_on_one_video_in_four(tmp_path):
    from flowprep.datasets.sample import CLASSES, generate

    generate(tmp_path, videos_per_class=8, frames=3, size_px=16, motion="varying")
    catalog = load_catalog("sample", str(tmp_path))
    assert Counter(i.splits["1"] for i in catalog.items) == {"train": 6 * len(CLASSES), "test": 2 * len(CLASSES)}
    assert Counter(i.splits["2"] for i in catalog.items) == {"train": 2 * len(CLASSES), "test": 6 * len(CLASSES)}
    assert all(i.splits["1"] != i.splits["2"] for i in catalog.items)  # split 2 swaps split 1's roles
    with pytest.raises(ValueError, match="sample motion"):
        generate(tmp_path / "other", motion="jumping")


def test_sample_spin_zoom_set_turns_and_scales_about_the_centre(tmp_path):
    import cv2

    from flowprep.datasets.sample import MOTION_SETS, generate, render_video

    generate(tmp_path, videos_per_class=2, frames=3, size_px=16, motion_set="spin_zoom")
    catalog = load_catalog("sample", str(tmp_path))
    assert catalog.classes == MOTION_SETS["spin_zoom"] and len(catalog.items) == 8
    yy, xx = np.mgrid[0:48, 0:48] - 23.5
    for name, kind, sign in (
        ("rotate_cw", "curl", 1),
        ("rotate_ccw", "curl", -1),
        ("zoom_in", "div", 1),
        ("zoom_out", "div", -1),
    ):
        video = render_video(np.random.default_rng(1), name, 4, 48, "constant")
        gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in video[1:3]]
        flow = cv2.calcOpticalFlowFarneback(*gray, None, 0.5, 3, 9, 3, 5, 1.1, 0)
        curl = float((flow[..., 0] * -yy + flow[..., 1] * xx).mean())  # > 0: clockwise on screen (y down)
        div = float((flow[..., 0] * xx + flow[..., 1] * yy).mean())  # > 0: expanding
        main, other = (curl, div) if kind == "curl" else (div, curl)
        assert np.sign(main) == sign and abs(main) > 3 * abs(other), (name, curl, div)  # that motion, mostly
    with pytest.raises(ValueError, match="motion set"):
        generate(tmp_path / "other", motion_set="shear")
