"""The patient portal's calls for the resident it acts for: their invitation, free times,
bookings and result. At the top of the house: it composes invitations, booking and results,
which never import it.
"""
