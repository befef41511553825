"""Research code only the benchmarks use (feature models tried against the LSTM)."""
