"""Names of the Kafka topics of the decision pipeline: the contract between producers and consumers.

``DECISION_LOG`` (written by a worker run with ``--log-decisions``) holds every served decision with the context it
was decided on; ``OUTCOME`` (written by the shop side) holds what each customer was shown and what they spent.
``nextbest log collect`` joins the two into the decision log of the data lake. ``join_changelog(group)`` is the
compacted topic where the workers of a consumer group keep the halves waiting for their twin
(``nextbest.stream.changelog``).
"""

DEMOGRAPHIC = "topic_demographic"
HISTORIC = "topic_historic"
PREDICTION = "topic_student_prediction"
DEAD_LETTER = "topic_dead_letter"
DECISION_LOG = "topic_decision_log"
OUTCOME = "topic_outcome"

ALL_TOPICS: tuple[str, ...] = (DEMOGRAPHIC, HISTORIC, PREDICTION, DEAD_LETTER, DECISION_LOG, OUTCOME)


def join_changelog(group_id: str) -> str:
    """The join changelog of the workers of consumer group ``group_id`` (Kafka Streams' ``<app>-<store>-changelog``)."""
    return f"{group_id}-join-changelog"
