"""The care unit register file's columns (CSV header), shared by the importer and the demo data."""

CARE_UNIT_COLUMNS = ("hsa_id", "name", "municipality", "operator", "participating", "weekly_capacity")
CONTACT_COLUMNS = ("visiting_address", "phone")
"""Optional: the unit's visiting address and phone, shown to residents in letters and texts."""
