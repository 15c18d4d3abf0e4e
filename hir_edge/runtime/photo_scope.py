"""Is a photo of what the bundle knows? Its distance to the reference species, in their spread.

A bundle trained on moths still embeds a photo of a stonefly somewhere, and the nearest moth
reference can be as similar as a moth's own nearest reference is. How far a photo is from its
nearest reference ignores how the references spread: along some directions of the embedding
the species' photos vary a lot, along others hardly at all, and a photo off in one of the
latter is off the map however near it looks.

So each species of the library is a Gaussian over its reference photos' embeddings, all sharing
one covariance (estimated from the photos' deviations from their own species' mean, shrunk
towards a multiple of the identity by the Ledoit–Wolf rule: 128 dimensions and a few photos per
species), and a photo's score is its Mahalanobis distance to the nearest species mean (Lee et
al., NeurIPS 2018, on a network's features). The export sets the limit that all but
``scope_quantile`` of the validation photos stay within. On the EU-Moths bundle
(``benchmarks/results/photo_scope.md``), against the nearest-reference similarity at the same
1%, it refused more drawn specimens of other orders (32.9% against 4.0%) and BIOSCAN photos of
other orders (8 of 17 against 6), and fewer moths: 5.1% of blurred test photos against 8.3%.
Most photos of other insects still pass: the embedding was trained on moths alone.

The Gaussians are fitted on the references the runtime is given: the shipped library (every
photo the user gave) where the export's threshold was set with the training photos alone. More
photos per species bring the means nearer new photos of those species, so in the field the
limit refuses about the share of moths it was set for, or fewer.

numpy only (this runs in the field).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


def ledoit_wolf_shrinkage(deviations: np.ndarray) -> float:
    """The Ledoit–Wolf (2004) shrinkage intensity for the covariance of ``deviations`` [n, p]
    (already centred): the weight of ``mean variance × I`` in the estimate that minimises the
    expected squared error of the shrunk covariance."""
    x = np.asarray(deviations, dtype=np.float64)
    n, p = x.shape
    cov = x.T @ x / n
    mu = np.trace(cov) / p
    delta = np.sum((cov - mu * np.eye(p)) ** 2) / p  # how far the sample covariance is from mu·I
    squares = x**2
    # mean over samples of ||x xᵀ − cov||², via sum_k ||x_k||⁴ and the sample covariance
    beta = (np.sum((squares.sum(axis=1)) ** 2) / n - np.sum(cov**2)) / (n * p)
    if delta <= 0:
        return 1.0
    return float(min(beta, delta) / delta)


@dataclass(frozen=True)
class PhotoScope:
    """Species means and the shared covariance's whitening of the reference photos.

    Attributes:
        means: [C, d] mean embedding of each species (each distinct lineage) of the library.
        whitening: [d, d] W with W Wᵀ the inverse of the shrunk covariance, so that the
            squared Mahalanobis distance of q to a mean m is ||(q − m) W||².
        shrinkage: the Ledoit–Wolf weight of the identity in the covariance (recorded).
    """

    means: np.ndarray
    whitening: np.ndarray
    shrinkage: float

    @classmethod
    def fit(cls, embeddings: np.ndarray, labels: np.ndarray) -> PhotoScope | None:
        """From the reference photos' embeddings [M, d] and label ids [M, L]; rows without a
        photo (all zeros) are left out. The covariance comes from the species with two or more
        photos, divided by its degrees of freedom (photos minus species), so the distances
        keep their scale whether a library holds few photos per species or many. None: no
        species with two photos that differ, or a spread too thin to invert (a few photos in
        many dimensions); the caller then keeps the similarity rule."""
        has_photo = np.abs(embeddings).sum(axis=1) > 0
        x = np.asarray(embeddings[has_photo], dtype=np.float64)
        if len(x) < 2:
            return None
        _, species = np.unique(labels[has_photo], axis=0, return_inverse=True)
        species = species.ravel()
        counts = np.bincount(species)
        means = np.zeros((len(counts), x.shape[1]))
        np.add.at(means, species, x)
        means /= counts[:, None]
        spread = counts[species] >= 2
        deviations = (x - means[species])[spread]
        freedom = int(spread.sum()) - int((counts >= 2).sum())
        if freedom < 1 or not np.any(deviations):
            return None
        shrinkage = ledoit_wolf_shrinkage(deviations)
        cov = deviations.T @ deviations / freedom
        mu = np.trace(cov) / cov.shape[0]
        shrunk = (1 - shrinkage) * cov + shrinkage * mu * np.eye(cov.shape[0])
        try:
            lower = np.linalg.cholesky(shrunk)  # shrunk = L Lᵀ, so d² = ||L⁻¹ (q − m)||²
        except np.linalg.LinAlgError:
            return None
        whitening = np.linalg.solve(lower, np.eye(len(lower))).T
        if not np.all(np.isfinite(whitening)):
            return None
        return cls(means, whitening, shrinkage)

    @cached_property
    def _whitened_means(self) -> tuple[np.ndarray, np.ndarray]:
        """The means in whitened coordinates, and their squared norms (once, not per batch)."""
        m = self.means @ self.whitening
        return m, (m**2).sum(axis=1)

    def distances(self, queries: np.ndarray) -> np.ndarray:
        """[N] Mahalanobis distance of each query [N, d] to its nearest species mean."""
        z = np.asarray(queries, dtype=np.float64) @ self.whitening
        m, m_squared = self._whitened_means
        squared = (z**2).sum(axis=1)[:, None] + m_squared[None] - 2 * z @ m.T
        return np.sqrt(np.maximum(squared.min(axis=1), 0.0))
