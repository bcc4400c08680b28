"""The strategy contract (Strategy, Param, signals), what a strategy may see (History), and the
registry that finds strategies by name."""
