"""The operator command line, ``halsosamtal`` (root in ``halsosamtal.cli.app``). Each feature
adds its own commands; this package init imports nothing, so a feature's CLI module can use
``halsosamtal.core.cli`` without importing every other feature."""
