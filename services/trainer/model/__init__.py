"""The network, its training, and the data it trains on: series, windows, scalers, the AR baseline."""
