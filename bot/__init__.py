"""certops: the long-running bot process and its command line."""

__version__ = "0.1.0"
