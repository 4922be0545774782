"""Signals of the audit app, for the apps above it (which audit may not import).

``log_verified`` is sent by ``marlin audit verify`` once the chain and the checkpoints hold. An
app whose rows can be recomputed from the log (review: pay) connects a receiver in its
``AppConfig.ready()`` that compares them and returns a list of problems, one sentence each;
``verify`` reports them and fails, so one command says whether the log and the ledger agree.
"""

from django.dispatch import Signal

log_verified = Signal()
