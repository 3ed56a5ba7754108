"""The public marketplace at the hub (``/``): search, listing pages, expressions of
interest from visitors; no account needed to browse."""
