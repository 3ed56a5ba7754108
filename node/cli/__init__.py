"""The ``cattc`` command line: one command group per operator task."""
