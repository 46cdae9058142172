"""Run a method's model over a stream of batches, in eval mode: logits for scoring, mean loss for
model selection. Below training and evaluation, which both use it (layer map:
tests/test_architecture.py)."""

from __future__ import annotations

import numpy as np
import torch

from salience.data.loader import BatchStream
from salience.methods.base import Method


@torch.no_grad()
def predict(
    method: Method, model: torch.nn.Module, stream: BatchStream
) -> tuple[np.ndarray, np.ndarray]:
    """(labels N, logits N×K float32) over a stream, in eval mode; restores the previous mode."""
    was = model.training
    model.eval()
    labels, logits = [], []
    for batch in stream:
        out = method.logits(model, batch).float()
        labels.append(batch["label"].cpu().numpy())
        logits.append(out.cpu().numpy())
    model.train(was)
    return np.concatenate(labels), np.concatenate(logits)


@torch.no_grad()
def mean_loss(method: Method, model: torch.nn.Module, stream: BatchStream, stage: str) -> float:
    """Sample-weighted mean of the method's total loss of `stage` over a stream, in eval mode
    (MENTOR's pretrain model selection); restores the previous mode."""
    was = model.training
    model.eval()
    total, n = 0.0, 0
    for batch in stream:
        total += float(method.loss(model, batch, stage).total) * len(batch["label"])
        n += len(batch["label"])
    model.train(was)
    return total / max(n, 1)
