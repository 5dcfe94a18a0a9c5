"""xsearch: cross-modal retrieval over images, audio and text.

Heavy modules (torch, faiss) load lazily, so ``import xsearch`` and ``xsearch --help`` stay fast.
"""

__version__ = "0.1.0"

__all__ = ["Engine", "__version__"]


def __getattr__(name):
    if name == "Engine":
        from xsearch.engine import Engine

        return Engine
    raise AttributeError(name)
