"""xsearch's HTTP server: a JSON API over one long-lived Engine per collection, and a search page.

Install with ``pip install 'xsearch[serve]'`` and run ``xsearch serve -c COLLECTION``; the API is described at
``/docs`` (OpenAPI). This package uses the engine only (plus xsearch.core.types / errors / media for sniffing uploads
and making thumbnails); it never imports the CLI.
"""

from xsearch.server.app import create_app
from xsearch.server.sessions import Limits

__all__ = ["Limits", "create_app"]
