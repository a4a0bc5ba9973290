"""Shared plumbing for the API and the worker: settings, database, errors, auth."""
