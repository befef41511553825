"""The test harness tests and benchmarks share: stand-ins for the services the pipeline talks to."""
