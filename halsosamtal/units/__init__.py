"""Care units (vårdcentraler): the centres that invite, book and hold the talks."""
