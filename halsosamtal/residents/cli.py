"""``halsosamtal import residents`` and ``halsosamtal demo-data``."""
