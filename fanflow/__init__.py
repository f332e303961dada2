"""fanflow: fan one request out into thousands of computations on AWS serverless and
continue exactly once when every one has finished. This package is the client and CLI."""

__version__ = "0.1.0"
