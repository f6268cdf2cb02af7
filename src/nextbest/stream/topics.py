"""Names of the Kafka topics of the decision pipeline: the contract between producers and consumers."""

DEMOGRAPHIC = "topic_demographic"
HISTORIC = "topic_historic"
PREDICTION = "topic_student_prediction"
DEAD_LETTER = "topic_dead_letter"

ALL_TOPICS: tuple[str, ...] = (DEMOGRAPHIC, HISTORIC, PREDICTION, DEAD_LETTER)
