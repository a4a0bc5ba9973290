"""``halsosamtal import care-units``."""
