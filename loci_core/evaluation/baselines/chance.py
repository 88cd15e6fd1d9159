"""Chance baseline: answer every video with the classes most frequent in the training split."""

from __future__ import annotations

import numpy as np


def most_frequent_classes(train_labels, n_classes: int, k: int = 5) -> np.ndarray:
    """The k most frequent classes of the training labels, most frequent first (ties: lower class).

    Returns (k,) int; classes never seen in training fill the tail in class order.
    """
    counts = np.bincount(np.asarray(train_labels, np.int64), minlength=n_classes)
    return np.argsort(-counts, kind="stable")[:k]


def chance_ranking(train_labels, n_classes: int, n_videos: int, k: int = 5) -> np.ndarray:
    """The same ranked classes (n_videos, k) for every evaluated video."""
    return np.tile(most_frequent_classes(train_labels, n_classes, k), (n_videos, 1))
