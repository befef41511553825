"""The one test harness: local servers, service launchers, waits and message builders for tests and benchmarks."""
