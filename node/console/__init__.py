"""The center console (``/console``): what a center's staff use in a browser."""
