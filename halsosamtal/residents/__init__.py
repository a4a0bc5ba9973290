"""Residents from the population and listing registers, with listing history."""
