"""The shard contract: quantization and its inverse, flips, names."""

import numpy as np
import pytest

from flowprep import format as fmt


@pytest.mark.parametrize("bound_px", [20.0, 5.0])
def test_dequantize_inverts_quantize_within_half_a_step(bound_px):
    flow_px = np.random.default_rng(0).uniform(-bound_px, bound_px, size=(64, 64, 2)).astype(np.float32)
    levels = fmt.quantize_flow(flow_px, bound_px)
    assert levels.dtype == np.uint8
    error_px = np.abs(fmt.dequantize_flow(levels.astype(np.float32), bound_px) - flow_px)
    assert error_px.max() <= fmt.quant_step_px(bound_px) / 2 + 1e-5


def test_quantize_clips_at_the_bound_and_uses_the_paper_formula():
    flow_px = np.array([-100.0, -20.0, -10.0, 0.0, 7.3, 20.0, 55.0], np.float32)
    expected = np.rint(255 * (np.clip(flow_px, -20, 20) + 20) / 40).astype(np.uint8)
    np.testing.assert_array_equal(fmt.quantize_flow(flow_px), expected)
    assert fmt.quantize_flow(np.float32(-20)) == 0 and fmt.quantize_flow(np.float32(20)) == 255


def test_flip_of_levels_is_exact_negation():
    levels = np.arange(256, dtype=np.uint8)
    flipped_px = fmt.dequantize_flow(fmt.flip_flow_x_levels(levels.astype(np.float32)))
    np.testing.assert_allclose(flipped_px, -fmt.dequantize_flow(levels.astype(np.float32)), atol=1e-5)


def test_keys_have_no_dots_and_group_in_webdataset():
    key = fmt.make_key("Apply.Eye Makeup", "v_x.y_g01")
    assert "." not in key and key.count("/") == 1 and " " not in key
    import webdataset.tariterators as ti  # stock WebDataset's own split of member names

    for ext in fmt.expected_members(3):
        prefix, suffix = ti.base_plus_ext(f"{key}.{ext}")
        assert (prefix, suffix) == (key, ext)


def test_member_names_round_trip_and_count():
    assert fmt.parse_frame_member(fmt.frame_member(fmt.FLOW_Y, 12)) == (fmt.FLOW_Y, 12)
    assert fmt.parse_frame_member("json") is None
    members = fmt.expected_members(5)
    assert len(members) == len(set(members)) == 2 + 5 + 2 * 4
    assert fmt.SHARD_NAME_RE.match(fmt.shard_name("train", 3, 1)).groupdict() == {
        "partition": "train",
        "task": "00003",
        "part": "001",
    }
