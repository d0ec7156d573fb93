"""The project's scripts; ``scripts.lib`` is what the scripts and the tests share."""
