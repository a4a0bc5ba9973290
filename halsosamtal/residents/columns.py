"""The residents register file's columns (CSV header), shared by the importer and the demo data.
Only ``personnummer`` is required; the others may be missing, in any order."""

RESIDENT_COLUMNS = (
    "personnummer",
    "care_unit",
    "municipality",
    "deso",
    "protected_identity",
    "address_line",
    "postal_code",
    "city",
    "phone",
    "digital_mailbox",
    "language",
    "deceased_on",
    "emigrated_on",
)
