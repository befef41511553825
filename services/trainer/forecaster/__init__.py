"""The forecaster: state, the three jobs (ingest, forecast, learn) and its two modes as strategies."""
