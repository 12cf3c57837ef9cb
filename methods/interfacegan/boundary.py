"""Semantic boundaries of InterFaceGAN (Shen et al., CVPR 2020): a linear SVM separating the latent codes of
the generated images an attribute predictor scores highest from those it scores lowest, and the conditional
manipulation that projects one boundary's normal off others.

Codes are float arrays (N, D); normals are unit vectors (D,); distances are ``n . c + offset``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.svm import SVC


@dataclass
class Boundary:
    """One attribute's hyperplane ``{c : normal . c + offset = 0}`` (normal has unit norm).

    val_accuracy:       SVM accuracy on the held-out part of the top / bottom ``ratio`` samples
    remaining_accuracy: agreement with the predictor on the samples between them (threshold: mid score)
    """

    normal: np.ndarray
    offset: float
    val_accuracy: float
    remaining_accuracy: float


def train_boundary(codes: np.ndarray, scores: np.ndarray, ratio: float = 0.02, split: float = 0.7,
                   seed: int = 0) -> Boundary:
    """Fit the boundary of one attribute.

    codes:  (N, D) latent codes of generated images
    scores: (N,) the attribute predictor's score (logit) of each image, higher = attribute present
    ratio:  share of N taken as positives (highest scores) and as many negatives (lowest); > 1 = a count
    split:  share of the chosen positives / negatives the SVM trains on; the rest validates it
    """
    # memory: the (N, D) codes are never copied whole (500K x 512 float64 would be 2 GB per copy); only the
    # chosen positives / negatives are gathered, and the remaining codes are classified in chunks
    codes = np.asarray(codes)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if codes.ndim != 2 or scores.shape[0] != codes.shape[0]:
        raise ValueError(f"codes must be (N, D) and scores (N,), got {codes.shape} and {scores.shape}")
    n = codes.shape[0]
    chosen = int(n * ratio) if 0 < ratio <= 1 else int(ratio)
    chosen = min(chosen, n // 2)
    if chosen < 2:
        raise ValueError(f"{n} samples with ratio {ratio} leave fewer than 2 positives and negatives")
    order = np.argsort(-scores, kind="stable")
    rng = np.random.default_rng(seed)
    n_train = max(1, int(chosen * split))
    pos, neg = rng.permutation(chosen), rng.permutation(chosen)
    positives = codes[order[:chosen][pos]].astype(np.float64)
    negatives = codes[order[n - chosen:][neg]].astype(np.float64)
    x_train = np.concatenate([positives[:n_train], negatives[:n_train]])
    y_train = np.concatenate([np.ones(n_train), np.zeros(n_train)])
    svm = SVC(kernel="linear").fit(x_train, y_train)
    coef, intercept = svm.coef_.reshape(-1), float(svm.intercept_[0])
    norm = float(np.linalg.norm(coef))
    if not np.isfinite(norm) or norm == 0:
        raise ValueError("the SVM found no boundary (the positives and negatives are identical?)")

    def accuracy(x: np.ndarray, y: np.ndarray) -> float:
        return float((svm.predict(x) == y).mean()) if len(y) else float("nan")

    x_val = np.concatenate([positives[n_train:], negatives[n_train:]])
    y_val = np.concatenate([np.ones(chosen - n_train), np.zeros(chosen - n_train)])
    middle = order[chosen:n - chosen]
    threshold = (scores[order[0]] + scores[order[-1]]) / 2
    correct = 0
    for start in range(0, len(middle), 65536):
        idx = middle[start:start + 65536]
        correct += int((svm.predict(codes[idx].astype(np.float64)) == (scores[idx] >= threshold)).sum())
    remaining = correct / len(middle) if len(middle) else float("nan")
    return Boundary(normal=coef / norm, offset=intercept / norm, val_accuracy=accuracy(x_val, y_val),
                    remaining_accuracy=remaining)


def project_boundary(primal: torch.Tensor, conditions: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """Unit direction of ``primal`` (D,) with its components along every condition normal removed.

    conditions: (M, D) unit normals (M may be 0). With one condition this is ``n1 - (n1 . n2) n2``
    normalised; with several, the least-squares projection onto the orthogonal complement of their span
    (the official ``project_boundary`` solves the same system in closed form for two conditions).
    """
    if isinstance(conditions, Sequence):
        conditions = torch.stack(list(conditions)) if len(conditions) else primal.new_zeros(0, primal.shape[0])
    if conditions.shape[0] == 0:
        return primal / primal.norm()
    c = conditions.double()
    gram = c @ c.T
    coeff = torch.linalg.lstsq(gram, (c @ primal.double())[:, None]).solution[:, 0]
    new = primal.double() - coeff @ c
    norm = new.norm()
    if norm < 1e-6:
        raise ValueError("the primal boundary lies in the span of the conditions: nothing is left to move along")
    return (new / norm).to(primal.dtype)
