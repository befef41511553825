"""Serving forecasts from carried LSTM states: one recurrent step per new bar."""
