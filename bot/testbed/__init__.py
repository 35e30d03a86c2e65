"""Loopback stand-ins used by the demo, the benchmarks and the tests: never pointed at real hosts."""
