"""The Fréchet distance between two embedding sets (FAD in VGGish space, FID-style in any other).

Each set is summarised by a Gaussian (mean, covariance); the distance between Gaussians is
``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))``. The matrix square root and its edge cases
follow the reference implementations (Google's frechet_audio_distance, pytorch-fid): a product whose
root is not finite, or that scipy warns is singular (fewer samples than dimensions), is retried with
``eps * I`` added to both covariances, and the tiny imaginary part rounding leaves in the root is dropped, but
a large one is an error rather than a silently wrong number.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import linalg


@dataclass(frozen=True)
class Gaussian:
    mean: np.ndarray  # (d,)
    cov: np.ndarray  # (d, d)


def fit_gaussian(embeddings: np.ndarray) -> Gaussian:
    """Mean and unbiased covariance of (n, d) embeddings, in float64; needs two rows at least."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"a Fréchet distance needs (n >= 2, d) embeddings, got shape {x.shape}")
    return Gaussian(x.mean(axis=0), np.cov(x, rowvar=False))


def gaussian_distance(a: Gaussian, b: Gaussian, eps: float = 1e-6) -> float:
    """Fréchet distance of two Gaussians."""
    if a.mean.shape != b.mean.shape:
        raise ValueError(f"embedding sizes differ: {a.mean.shape[0]} and {b.mean.shape[0]}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", linalg.LinAlgWarning)
        root = linalg.sqrtm(a.cov @ b.cov)
    if caught or not np.isfinite(root).all():
        offset = eps * np.eye(len(a.mean))
        root = linalg.sqrtm((a.cov + offset) @ (b.cov + offset))
    if np.iscomplexobj(root):
        if not np.allclose(np.diagonal(root).imag, 0, atol=1e-3):
            raise ValueError(f"matrix square root has an imaginary component {np.abs(root.imag).max():.3g}")
        root = root.real
    diff = a.mean - b.mean
    return float(diff @ diff + np.trace(a.cov) + np.trace(b.cov) - 2 * np.trace(root))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to (n, d) and (m, d) embeddings."""
    return gaussian_distance(fit_gaussian(a), fit_gaussian(b))
