"""The region's follow-up of the access log (loggkontroll): search and export events by
resident, client, acting person and period, check the hash chain, archive old events.

Above ``audit`` (which writes and chains events and knows no one's personnummer) and
``residents`` (which turns the personnummer an operator asks about into the resident's id).
"""
