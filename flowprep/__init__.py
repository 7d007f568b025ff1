"""flowprep: video datasets -> RGB + TV-L1 optical-flow WebDataset shards."""

__version__ = "0.1.0"
