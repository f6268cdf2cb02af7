"""Names of the Kafka topics of the decision pipeline: the contract between producers and consumers.

``DECISION_LOG`` (written by a worker run with ``--log-decisions``) holds every served decision with the context it
was decided on; ``OUTCOME`` (written by the shop side) holds what each customer was shown and what they spent.
``nextbest log collect`` joins the two into the decision log of the data lake.
"""

DEMOGRAPHIC = "topic_demographic"
HISTORIC = "topic_historic"
PREDICTION = "topic_student_prediction"
DEAD_LETTER = "topic_dead_letter"
DECISION_LOG = "topic_decision_log"
OUTCOME = "topic_outcome"

ALL_TOPICS: tuple[str, ...] = (DEMOGRAPHIC, HISTORIC, PREDICTION, DEAD_LETTER, DECISION_LOG, OUTCOME)
