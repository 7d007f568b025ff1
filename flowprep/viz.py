"""Flow pictures: the Middlebury colour wheel, and a preview sheet of RGB frames beside their flow."""

from __future__ import annotations

import numpy as np


def flow_to_color(flow_xy: np.ndarray, max_magnitude_px: float | None = None) -> np.ndarray:
    """float32 (H,W,2) px -> uint8 (H,W,3) RGB: hue = direction, saturation = speed (Middlebury wheel).

    `max_magnitude_px` fixes the scale (so frames of one video compare); default: this field's max.
    """
    import cv2

    fx, fy = flow_xy[..., 0].astype(np.float32), flow_xy[..., 1].astype(np.float32)
    magnitude, angle_rad = cv2.cartToPolar(fx, fy)
    scale = max_magnitude_px or float(magnitude.max()) or 1.0
    hsv = np.zeros(flow_xy.shape[:2] + (3,), np.uint8)
    hsv[..., 0] = (angle_rad * (90.0 / np.pi)).astype(np.uint8)  # OpenCV hue is 0..180
    hsv[..., 1] = np.clip(magnitude / scale * 255, 0, 255).astype(np.uint8)
    hsv[..., 2] = 255
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def color_wheel(size_px: int = 64) -> np.ndarray:
    """uint8 (S,S,3): the legend, the colour of each flow direction at full speed."""
    ys, xs = np.mgrid[-1 : 1 : size_px * 1j, -1 : 1 : size_px * 1j].astype(np.float32)
    wheel = flow_to_color(np.stack([xs, ys], -1), max_magnitude_px=1.0)
    wheel[np.hypot(xs, ys) > 1] = 255
    return wheel


def preview_sheet(members: dict[str, bytes], flow_indices: list[int]) -> np.ndarray:
    """uint8 RGB sheet: one row per flow index: its first RGB frame | flow x | flow y (as quantized levels)
    | colour-wheel flow, + legend. Any flow format and stride (`format.flow_layout`)."""
    import json

    import cv2

    from . import format as fmt

    meta = json.loads(members["json"])
    bound = meta["flow"]["bound_px"]
    layout = fmt.flow_layout(meta)
    rows = []
    for j in flow_indices:
        rgb_jpeg = members[fmt.frame_member(fmt.RGB, layout.source_frame(j))]
        rgb = cv2.imdecode(np.frombuffer(rgb_jpeg, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
        flow_xy = np.stack(
            [
                fmt.flow_plane_px(members[fmt.frame_member(kind, j, layout.ext)], meta)
                for kind in (fmt.FLOW_X, fmt.FLOW_Y)
            ],
            -1,
        )
        qx, qy = (fmt.quantize_flow(flow_xy[..., c], bound) for c in (0, 1))
        rows.append(
            np.concatenate(
                [
                    rgb,
                    np.repeat(qx[..., None], 3, -1),
                    np.repeat(qy[..., None], 3, -1),
                    flow_to_color(flow_xy, max_magnitude_px=max(1.0, float(np.abs(flow_xy).max()))),
                ],
                1,
            )
        )
    sheet = np.concatenate(rows, 0)
    legend = color_wheel(min(64, sheet.shape[0]))
    pad = np.full((sheet.shape[0], legend.shape[1], 3), 255, np.uint8)
    pad[: legend.shape[0]] = legend
    return np.concatenate([sheet, pad], 1)
