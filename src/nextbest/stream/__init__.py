"""The stream face: Kafka decision pipeline, broker launcher, traffic generator.

It may import the core packages (`models`, `sim`, `experiments`); the core never imports it.
The launchers (`Broker`, `SeaweedFS`) start real local services as child processes and stop them cleanly.
"""

from nextbest.stream.broker import Broker, consumer_config, create_topics, producer_config
from nextbest.stream.objectstore import SeaweedFS
from nextbest.stream.topics import ALL_TOPICS, DEAD_LETTER, DEMOGRAPHIC, HISTORIC, PREDICTION

__all__ = [
    "ALL_TOPICS",
    "DEAD_LETTER",
    "DEMOGRAPHIC",
    "HISTORIC",
    "PREDICTION",
    "Broker",
    "SeaweedFS",
    "consumer_config",
    "create_topics",
    "producer_config",
]
