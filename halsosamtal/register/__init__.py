"""The register import as the service runs it: residents from the population and listing
registers, and what each import sets off in invitations (withdrawal of residents who died or
moved away, invitations following a listing to another unit), in the same transaction.

Above both ``residents`` (the import's mechanics) and ``invitations`` (the lifecycle), which
therefore never import each other.
"""
