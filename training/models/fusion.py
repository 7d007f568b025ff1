"""Late fusion of two (or more) trained streams' class scores, e.g. flow teacher + RGB student.

- `average_scores`: the two-stream average. By default of the raw logits, as MARS's
  test_two_stream.py does (the "Mimic+Flow" columns of paper 002, Table 1); `softmax=True` averages
  probabilities as in Simonyan & Zisserman's two-stream network.
- `AttentionFusion`: paper 002, section 3.4 / Fig. 2. The streams' scores are concatenated, passed
  through a twin-layer linear model (two fully-connected layers; the paper calls it linear, so no
  non-linearity between them), a softmax over its S outputs gives one weight per stream and sample,
  and the fused score is the weighted sum of the streams' scores. Only the module is trained (CE on
  the fused scores); the streams stay frozen. The hidden width is not given in the paper: 64 here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def average_scores(scores: Sequence[torch.Tensor], *, softmax: bool = False) -> torch.Tensor:
    """S tensors (B, K) -> (B, K): their mean, of logits (default) or of softmax probabilities."""
    if not scores or any(s.shape != scores[0].shape for s in scores):
        raise ValueError(f"need one or more score tensors of equal shape, got {[tuple(s.shape) for s in scores]}")
    stacked = torch.stack([s.float() for s in scores])
    return (stacked.softmax(dim=-1) if softmax else stacked).mean(dim=0)


class AttentionFusion(nn.Module):
    """Per-sample stream weights from the concatenated scores; fused = sum_s w_s * scores_s."""

    def __init__(self, num_classes: int, num_streams: int = 2, hidden_features: int = 64):
        super().__init__()
        self.num_classes, self.num_streams = num_classes, num_streams
        self.fc1 = nn.Linear(num_streams * num_classes, hidden_features)
        self.fc2 = nn.Linear(hidden_features, num_streams)

    def stream_weights(self, scores: Sequence[torch.Tensor]) -> torch.Tensor:
        """S tensors (B, K) -> weights (B, S), each row summing to 1."""
        if len(scores) != self.num_streams or any(s.shape[-1] != self.num_classes for s in scores):
            raise ValueError(
                f"expected {self.num_streams} score tensors (B, {self.num_classes}), "
                f"got {[tuple(s.shape) for s in scores]}"
            )
        return self.fc2(self.fc1(torch.cat(list(scores), dim=1))).softmax(dim=1)

    def forward(self, scores: Sequence[torch.Tensor]) -> torch.Tensor:
        """S tensors (B, K) -> fused scores (B, K); train with cross-entropy on them."""
        weights_bs = self.stream_weights(scores)
        return (torch.stack(list(scores), dim=1) * weights_bs.unsqueeze(-1)).sum(dim=1)
