"""The JSON API for portals, EHR adapters and operators.

Importing the package registers every table (``halsosamtal.models``), so whatever module of it a
process starts from, every foreign key resolves before a session flushes.
"""

import halsosamtal.models  # noqa: F401 - every table registered where every process starts
