"""The demo region as a year in progress: a composition of every feature, on the top floor.

:mod:`halsosamtal.demo.simulate` drives the real services (register import, programme year,
bookable times, batch, release, reminders, delivery, booking, attendance, results, month close)
through simulated days, each at its own instant of the service's clock.
"""
