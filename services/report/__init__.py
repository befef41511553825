"""``portfolio report``: actual closes, predictions and their error against naive, as one HTML file."""
