"""What every portfol.io service shares: settings, message schemas, Kafka and MongoDB helpers, logging,
the stop flag, and the operations endpoints."""
