"""The JSON API for portals, EHR adapters and operators."""
