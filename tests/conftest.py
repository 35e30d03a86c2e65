from tests.fakes.iis import iis
from tests.fakes.tls import lab

__all__ = ["iis", "lab"]
