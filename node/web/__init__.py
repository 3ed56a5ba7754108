"""The node's HTTP face: aiohttp app factory, routes, handlers and middleware."""
