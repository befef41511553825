"""The one scorer: every figure that names a score (the trainer's walk-forward metrics, ``portfolio
evaluate``, ``backtest``, ``report`` and the live view) is computed here. numpy and pandas only, importing
``shared`` only, so reading scores never loads torch."""
