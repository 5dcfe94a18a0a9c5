"""The core every layer shares: types (Query, Hit, Filters, reports), coded errors and paths."""
