"""The control endpoint: the core's public API on a Unix socket, and the clients that use it."""
