"""Research, apart from serving: retrieval metrics, the evaluation runner and the CCA / PLS baselines.

- ``xsearch.evaluation.metrics``: Recall@K, mAP, median rank and their chance levels (pure numpy).
- ``xsearch.evaluation.scoring``: what every aligner shares — directions, split, relevance labels, the report
  types, retrieval through the real FAISS index scored per direction.
- ``xsearch.evaluation.runner``: ``xsearch eval`` — embed a paired-data manifest (JSONL) split and score each
  direction (``run_evaluation`` loads the model or runs a CCA / PLS baseline).
- ``xsearch.evaluation.cca`` / ``pls``: the classic CCA and PLS baselines on frozen unimodal features.

The engine (serving) never imports this package; the import-linter contracts in pyproject.toml enforce it.
"""
