"""The engine: the Python API the CLI and the server call (:class:`Engine`), and what it drives — indexing,
search, queries, fusion, embedding, tagging and the executors that embed files.

``Engine`` loads lazily, so importing a submodule (e.g. ``xsearch.engine.embed`` in a worker) stays light.
"""

__all__ = ["Engine"]


def __getattr__(name):
    if name == "Engine":
        from .session import Engine

        return Engine
    raise AttributeError(name)
