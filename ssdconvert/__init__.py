"""ssdconvert: take an SSD-family PyTorch detector to a measured device model."""

__version__ = "0.1.0"
