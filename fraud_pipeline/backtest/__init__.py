"""Train a scorecard model and backtest the detection scoring on a labelled transactions CSV."""
