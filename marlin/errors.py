"""Exceptions shared by every app's actions. Plain Python."""


class IllegalTransition(Exception):
    """An action refused because of the object's current state; the message says why, in words
    fit to show the person who tried (no agent identities: experts see it on blind pages)."""
