"""PLS baseline: partial least squares (scikit-learn ``PLSCanonical``) between the same frozen unimodal features
as the CCA baseline (``xsearch.evaluation.cca``), fitted on the train split (``xsearch eval --aligner pls``).

Where CCA finds the projections of the two views with the highest *correlation*, PLS maximises their
*covariance*: it favours directions that carry much variance in each view, which makes it less prone to fitting
noise in small, high-dimensional train sets and more prone to following each view's dominant (not necessarily
shared) factors. Features, standardisation, projection and scoring are CCA's (``evaluate_subspace``).
"""

from __future__ import annotations

from typing import Callable, Sequence

from xsearch.evaluation.cca import N_COMPONENTS, UnimodalFeatures, evaluate_subspace
from xsearch.evaluation.metrics import DEFAULT_KS
from xsearch.evaluation.scoring import EvalReport


def evaluate_pls(manifest_path: str, *, split: str | None = None, train_split: str = "train",
                 directions: Sequence[tuple[str, str]] | None = None, relevance: str = "auto",
                 factory: str = "Flat", n_components: int = N_COMPONENTS, ks: Sequence[int] = DEFAULT_KS,
                 features: UnimodalFeatures | None = None,
                 log: Callable[[str], None] | None = None) -> EvalReport:
    """Fit PLSCanonical per modality pair on ``train_split`` of a paired-data manifest (JSONL), evaluate retrieval
    on ``split`` (default: test)."""
    from sklearn.cross_decomposition import PLSCanonical

    # the data are standardised before fitting (as for CCA), so PLS's own scaling is left off
    return evaluate_subspace(manifest_path, "pls", lambda k: PLSCanonical(n_components=k, scale=False, max_iter=1000),
                             split=split, train_split=train_split, directions=directions, relevance=relevance,
                             factory=factory, n_components=n_components, ks=ks, features=features, log=log)
