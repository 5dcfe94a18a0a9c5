"""Research, apart from serving: retrieval metrics, the evaluation runner and the CCA baseline.

- ``xsearch.evaluation.metrics``: Recall@K, mAP, median rank and their chance levels (pure numpy).
- ``xsearch.evaluation.runner``: ``xsearch eval`` — embed a paired-data manifest (JSONL) split, retrieve through
  the real FAISS index, score each direction (``run_evaluation`` loads the model or the CCA baseline).
- ``xsearch.evaluation.cca``: the classic CCA baseline on frozen unimodal features.

The engine (serving) never imports this package; the import-linter contracts in pyproject.toml enforce it.
"""
