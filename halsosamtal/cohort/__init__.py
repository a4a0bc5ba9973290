"""Cohort queries: who turns a target age in a programme year, counted and listed."""
