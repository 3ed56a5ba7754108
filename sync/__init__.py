"""Federation sync: signed requests to peers, the feed reader, its schedule and backoff.

Imports ``protocol`` and ``policies`` only; storage is reached through the small
interfaces in ``sync.interfaces`` that the node implements.
"""
