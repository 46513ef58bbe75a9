"""The 2-D view of a clustered playlist for the scatter, and what its axes mean.

Linear discriminant analysis when there are 3+ clusters (the view that separates the found
clusters best), else PCA; each axis is labelled with the features most correlated with it.
Separate from :mod:`bot.clustering` (which chooses k and fits): it only reads the matrix and
the labels.
"""

from __future__ import annotations

import numpy as np

from bot.features.matrix import FeatureMatrix, distinct_rows


def project(fm: FeatureMatrix, labels: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """2-D coordinates for the scatter, and what the axes mean.

    With 3+ clusters: linear discriminant analysis (the 2-D view that separates the found
    clusters best — plain PCA is often dominated by one feature such as release year).
    Otherwise PCA. LDA yields a single axis when the cluster centres lie on one line (3 of
    460 real TidyTuesday playlists with the earlier features); the second axis is then the
    first principal component of what that axis leaves. Each axis is labelled with the
    features most correlated with it.
    """
    from sklearn.decomposition import PCA
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    X = np.nan_to_num(fm.X, nan=0.0, posinf=0.0, neginf=0.0)
    if X.shape[1] < 2:
        X = np.column_stack([X, np.zeros(X.shape[0])])
    method = "PCA"
    coords: np.ndarray | None = None
    if distinct_rows(X) < 2:
        coords = np.zeros((X.shape[0], 2))
    elif labels is not None and len(set(labels.tolist())) >= 3:
        try:
            lda = LinearDiscriminantAnalysis(n_components=2, solver="svd")
            coords = lda.fit_transform(X, labels)
            method = "LDA"
        except (ValueError, np.linalg.LinAlgError):
            coords = None
        if coords is not None and coords.shape[1] < 2:
            coords = np.column_stack([coords[:, 0], _residual_axis(X, coords[:, 0])])
    if coords is None:
        coords = PCA(n_components=2, svd_solver="full").fit_transform(X)
    names = ["axis 1", "axis 2"] if method == "LDA" else ["PC1", "PC2"]
    axis_labels = [_axis_label(names[j], fm, coords[:, j]) for j in range(2)]
    return coords, {"method": method, "x_label": axis_labels[0], "y_label": axis_labels[1]}


def _residual_axis(X: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """First principal component of X after removing what is linear in ``axis``."""
    from sklearn.decomposition import PCA

    a = axis - axis.mean()
    Xc = X - X.mean(axis=0)
    denom = float(a @ a)
    residual = Xc - np.outer(a, a @ Xc) / denom if denom > 1e-12 else Xc
    if float(np.abs(residual).max()) <= 1e-12:
        return np.zeros(X.shape[0])
    return PCA(n_components=1, svd_solver="full").fit_transform(residual)[:, 0]


def _axis_label(name: str, fm: FeatureMatrix, axis: np.ndarray) -> str:
    """'axis 1: +energy, −acousticness' from the features most correlated with the axis."""
    parts: list[tuple[float, str]] = []
    if np.std(axis) > 1e-12:
        for feature, col in fm.scaled.items():
            if np.std(col) <= 1e-12:
                continue
            r = float(np.corrcoef(col, axis)[0, 1])
            if abs(r) >= 0.3:
                parts.append((abs(r), ("+" if r > 0 else "−") + _pretty(feature)))
    parts.sort(key=lambda p: (-p[0], p[1]))
    return f"{name}: " + (", ".join(p for _, p in parts[:3]) or "mixed features")


def _pretty(column: str) -> str:
    return column.replace("_min", "").replace("_", " ")
