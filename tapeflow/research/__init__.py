"""Research discipline: walk-forward, perturbation, the look-ahead check and their summaries."""
