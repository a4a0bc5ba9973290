"""The access log of personal data (patientdatalagen: who accessed whose data, what, when, why).

Every read and change of a resident's personal data through the API or the CLI writes one
access event per resident, set-based, in the same transaction as the access. Events are
append-only (a trigger refuses UPDATE, DELETE and TRUNCATE) and chained: a sealer gives each
event, in the order transactions finished, a hash over the previous event's hash and its own
fields, so an edit or a removal made past the trigger breaks the chain where it happened.
"""
