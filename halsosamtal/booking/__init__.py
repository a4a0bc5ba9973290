"""Booking: times that centres publish, self-booking by portals, attendance."""
