"""The care unit register file's columns (CSV header), shared by the importer and the demo data."""

CARE_UNIT_COLUMNS = ("hsa_id", "name", "municipality", "operator", "participating", "weekly_capacity")
