"""What the CATTC hub does beyond being a node: custody, matching, search, monitoring."""
