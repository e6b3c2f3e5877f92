"""Backends that live outside ssdconvert, registered by a full module path (tests/backends/test_toy_backend.py)."""
