"""The hub operator's console (``/console/hub``): the directory, sync history and the
queue of visitors' expressions of interest."""
