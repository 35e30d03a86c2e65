from tests.fakes.hostile_targets import hostile
from tests.fakes.iis import iis
from tests.fakes.tls import lab

__all__ = ["hostile", "iis", "lab"]
