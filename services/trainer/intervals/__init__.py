"""Forecast intervals: the session clock, the volatility model, its calibration and the running sigma."""
