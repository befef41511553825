"""The dashboard: a Kafka consumer of bars and forecasts that holds the newest minutes of every ticker in
memory and serves them as a web page and a JSON read API (``docs/architecture.md``, "The dashboard")."""
