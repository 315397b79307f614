"""Domain logic: plain functions that take the actor, the time and the Vambe client as arguments.

Nothing in this package reads Flask's request, session, ``g`` or ``current_user``.
"""
