"""Invitations: a programme year's paced batch, reminders, expiry and withdrawal."""
