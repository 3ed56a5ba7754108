"""Services: what a node does, independent of HTTP and of the CLI that call them."""
