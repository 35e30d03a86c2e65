from tests.fakes.tls import lab

__all__ = ["lab"]
