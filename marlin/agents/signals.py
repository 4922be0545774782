"""What the agents app announces to the apps above it.

Agents sit below checks and review in Marlin's layers (they use candidates, not the other way
round), so the agents app cannot call them when a candidate is stored. It sends
`candidate_ready` instead; the checks app queues the candidate's checks and the review app
creates or advances the comparison. Both receivers are connected in their AppConfig.ready(), so
a receiver that fails to import stops the process at start, not silently at run time.
"""

from django.dispatch import Signal

# Sent with `candidate=` (a saved Candidate) after its turn is done, by a run or an import.
# Receivers run in INSTALLED_APPS order: the checks app's before the review app's.
candidate_ready = Signal()
