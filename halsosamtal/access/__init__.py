"""API clients, their keys and roles, and the request authentication that uses them."""
