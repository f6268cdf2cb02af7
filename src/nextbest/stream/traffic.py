"""The shop side of the online A/B experiment: sessions into Kafka, decisions applied, outcomes to the platform.

``run_traffic(config, world)`` plays ``config.sessions`` shop sessions at ``config.rate`` per second and returns a
summary dict. Contract:

* **Customers** are ``world.sample(sessions, stream=1_000_000 + seed, uuid_start=10**9 * (1 + seed))``: seeded,
  uuids unique within a run and across seeds (so runs can share a broker). Each session's two halves
  (``topic_demographic``, ``topic_historic``, keyed by ``str(uuid)``) go out in random order, the second one after
  a uniform delay in ``[0, max_delay]`` seconds, like the real feed. The historic half is written the way ``feed``
  says (``nextbest.sim.shop.FeedStyle``; default ``realistic``: the example message's key set, repeated keys,
  some in conflict, a few more flags missing), so the pipeline meets the real feed's quirks. With
  ``malformed_rate`` a share of customers has one half broken by ``faults.corrupt`` (a random kind of that half):
  they are counted, and the new arm falls back for them.
* **Readiness**: before the first session a few probe customers (uuids just below the customers', stream
  ``3_000_000 + seed``, not part of the experiment) go through the pipeline; the run starts once one decision
  with the experiment's token is back (``ready_timeout``), so the worker's group join does not eat the first
  customers' decision time.
* **Serving without an experiment** (``serve_all``): every session gets the stream's decision (arm ``served``;
  the platform is not called, ``platform`` and ``experiment`` are ignored), the outcomes go to ``topic_outcome``
  only, and the run ends when every session is resolved: how a decision log is gathered (``nextbest demo loop``).
* **A served control** (``control_token``): the original arm gets the first decision carrying ``control_token``
  (a second worker, e.g. the model that logged the data, exploring as it did) instead of the original rule, with
  the same timeouts and fallbacks as the new arm; readiness waits for both workers.
* **Arms** come from the platform (``POST /api/experiments/{id}/assignments``, the same hash as the per-uuid
  route), asked in batches as sessions go out. Uuids travel to the platform as the integers the feed carries (the
  platform stores one canonical form, so ``404180`` and ``"404180"`` are the same unit).
* **Decisions**: the original arm gets ``world.original_policy``; the new arm gets the first decision read from
  ``topic_student_prediction`` (a consumer assigned to the topic's end at start, no group) whose token equals the
  experiment's token. Other tokens are counted (``token_mismatches``) and ignored, and so are decisions for
  uuids outside the run's range (``foreign_decisions``: other runs sharing the topic). No decision within
  ``decision_timeout`` seconds of the second half → "don't show" (``fallback_timeouts``).
* **Revenue** is the world's ground truth for the applied decision: ``world.simulate_revenue`` on the run's own
  stream ``2_000_000 + seed``, drawn once for "show" and once for "don't show" with the same stream (common random
  numbers: the purchase draw and the noise of a customer do not depend on the decision).
* **Outcomes** ``{uuid, arm, decision, revenue}`` are posted in batches, in session order (an outcome waits for
  the outcomes of earlier sessions, so both arms arrive at the same pace: no sample-ratio mismatch); the new
  arm's decisions also go to ``/decisions``. Every outcome is also written to ``topic_outcome`` (key: the uuid)
  as ``{uuid, experiment, arm, decision, revenue, served, at}``, ``served`` true when the decision applied is the
  stream's (not the original arm's rule, not a fallback): what ``nextbest log collect`` joins with the decision log.
  The run stops when the platform reports the designed sample complete (or all sessions are played and
  resolved), then reads the result. Every figure is in the summary.
"""

from __future__ import annotations

import heapq
import json
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from nextbest.errors import NextbestError
from nextbest.sim.shop import Customers, FeedStyle, World
from nextbest.stream import topics
from nextbest.stream.broker import consumer_config, producer_config
from nextbest.stream.faults import FAULT_KINDS, corrupt

CUSTOMER_STREAM = 1_000_000
REVENUE_STREAM = 2_000_000
PROBE_STREAM = 3_000_000
UUID_BLOCK = 10**9
PROBES = 3


@dataclass
class TrafficConfig:
    """Settings of one traffic run against one experiment."""

    bootstrap_servers: str
    platform: str
    experiment: int
    token: str
    sessions: int = 100_000
    rate: float = 2000.0
    seed: int = 0
    max_delay: float = 0.05
    malformed_rate: float = 0.0
    feed: str = "realistic"
    key_set: str | None = None
    repeat_rate: float | None = None
    conflict_share: float | None = None
    missing_rate: float | None = None
    decision_timeout: float = 5.0
    ready_timeout: float = 60.0
    batch_interval: float = 0.2
    progress_interval: float = 0.5
    serve_all: bool = False  # no experiment: every session gets the stream's decision (arm "served"), no platform
    control_token: str | None = None  # the original arm served by a second worker's decisions carrying this token

    def check(self) -> None:
        """NextbestError for settings no run can use."""
        if self.sessions < 1:
            raise NextbestError(f"--sessions must be at least 1, got {self.sessions}")
        if not self.rate > 0:
            raise NextbestError(f"--rate must be positive, got {self.rate}")
        if not 0 <= self.seed < CUSTOMER_STREAM:
            raise NextbestError(f"--seed must be in [0, {CUSTOMER_STREAM:,}), got {self.seed}")
        if not 0 <= self.malformed_rate < 1:
            raise NextbestError(f"--malformed-rate must be in [0, 1), got {self.malformed_rate}")
        if self.sessions * 4 > UUID_BLOCK or self.max_delay < 0:
            raise NextbestError("--sessions must be at most 250,000,000 and the delay non-negative")
        self.feed_style()

    def feed_style(self) -> FeedStyle:
        """The feed preset with the rates given here (NextbestError for an unknown preset or a rate outside [0, 1])."""
        return FeedStyle.named(self.feed, keys=self.key_set, repeat_rate=self.repeat_rate,
                               conflict_share=self.conflict_share, missing_rate=self.missing_rate)  # fmt: skip


# ---------------------------------------------------------------------------------------------- platform client


class PlatformClient:
    """A small keep-alive HTTP client of the platform API; refusals become one-line ``NextbestError``s."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        import httpx

        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, experiment: int, **kwargs: Any) -> Any:
        import httpx

        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise NextbestError(f"the platform at {self.url} is unreachable: {error}") from error
        if response.status_code == 404:
            raise NextbestError(f"experiment {experiment} does not exist on the platform at {self.url}")
        if response.status_code in (401, 403):
            raise NextbestError(f"the token does not open experiment {experiment} on {self.url}")
        if response.status_code >= 400:
            raise NextbestError(f"the platform refused {method} {path}: {response.status_code} {response.text[:200]}")
        return response.json()

    def create_experiment(self, design: dict[str, Any]) -> dict[str, Any]:
        """Create an experiment from a design; the answer {id, token, required_sample_size, achieved_power}."""
        return self._call("POST", "/api/experiments", 0, json=design)

    def experiment(self, experiment: int) -> dict[str, Any]:
        """Configuration, progress and (once complete) result of an experiment."""
        return self._call("GET", f"/api/experiments/{experiment}", experiment)

    def check_token(self, experiment: int, token: str) -> None:
        """NextbestError unless ``token`` opens the experiment (an empty decision list records nothing)."""
        self.post(experiment, token, "decisions", [])

    def arms(self, experiment: int, uuids: list[int | str]) -> list[str]:
        """The platform's arm of each uuid, in order."""
        path = f"/api/experiments/{experiment}/assignments"
        return self._call("POST", path, experiment, json={"uuids": uuids})["arms"]

    def post(self, experiment: int, token: str, kind: str, rows: list[dict[str, Any]]) -> dict[str, int]:
        """Post ``rows`` to ``/decisions`` or ``/outcomes``; {accepted, duplicates}."""
        headers = {"Authorization": f"Bearer {token}"}
        return self._call("POST", f"/api/experiments/{experiment}/{kind}", experiment, json=rows, headers=headers)


# ---------------------------------------------------------------------------------------------- the run's data


@dataclass
class Plan:
    """Everything a run will send, drawn up front from the seed: customers, their halves' order and faults."""

    customers: Customers
    original: np.ndarray  # original policy's decision per customer
    revenue: np.ndarray  # (n, 2): revenue if not shown / shown (common random numbers)
    demographic_first: np.ndarray
    delay: np.ndarray
    malformed: np.ndarray  # bool
    fault_kind: np.ndarray  # index into FAULT_KINDS of the broken half's topic
    fault_half: np.ndarray  # 0 demographic, 1 historic


def run_uuid_range(seed: int) -> tuple[int, int]:
    """The uuids a run of ``seed`` uses, probes (just below the customers) included: ``[low, high)``."""
    return UUID_BLOCK * (1 + seed) - 4 * PROBES, UUID_BLOCK * (2 + seed)


def make_plan(world: World, sessions: int, seed: int, max_delay: float, malformed_rate: float) -> Plan:
    """The seeded plan of a run (see the module docstring for the streams)."""
    customers = world.sample(sessions, stream=CUSTOMER_STREAM + seed, uuid_start=UUID_BLOCK * (1 + seed))
    revenue = np.column_stack([
        world.simulate_revenue(customers, np.full(sessions, d), stream=REVENUE_STREAM + seed) for d in (0, 1)
    ])  # fmt: skip
    rng = np.random.default_rng([world.config.seed, CUSTOMER_STREAM + seed, 1])
    return Plan(
        customers=customers,
        original=world.original_policy(customers),
        revenue=revenue,
        demographic_first=rng.random(sessions) < 0.5,
        delay=rng.uniform(0.0, max_delay, sessions),
        malformed=rng.random(sessions) < malformed_rate,
        fault_kind=rng.integers(0, len(FAULT_KINDS[topics.HISTORIC]), sessions),
        fault_half=rng.integers(0, 2, sessions),
    )


def _slice(customers: Customers, index: np.ndarray) -> Customers:
    return Customers(customers.uuid[index], customers.age[index], customers.man[index], customers.cats[index],
                     customers.us[index])  # fmt: skip


def session_payloads(
    world: World, plan: Plan, i: int, rng: np.random.Generator, style: FeedStyle | None = None
) -> list[tuple[str, bytes]]:
    """The two (topic, bytes) halves of session ``i`` in sending order, written in the feed's ``style``; one half
    broken if the customer is malformed."""
    customer = _slice(plan.customers, np.array([i]))
    (demographic,), (historic,) = world.feed_messages(customer, style or FeedStyle(), rng)
    payloads = [(topics.DEMOGRAPHIC, demographic), (topics.HISTORIC, historic)]
    if plan.malformed[i]:
        half = int(plan.fault_half[i])
        topic = payloads[half][0]
        record = world.messages(customer)[half][0]
        payloads[half] = (topic, corrupt(record, topic, FAULT_KINDS[topic][int(plan.fault_kind[i])], rng))
    return payloads if plan.demographic_first[i] else payloads[::-1]


# ---------------------------------------------------------------------------------------------- Kafka ends


def _producer(bootstrap: str) -> Any:
    from confluent_kafka import Producer


    return Producer(producer_config(bootstrap, **{"linger.ms": 1}))


def _prediction_consumer(bootstrap: str) -> Any:
    """A group-less consumer of the prediction topic positioned at its current end (nothing older is read)."""
    from confluent_kafka import Consumer, TopicPartition


    consumer = Consumer(consumer_config(bootstrap, "nextbest-traffic", **{"fetch.wait.max.ms": 10}))
    metadata = consumer.list_topics(topics.PREDICTION, timeout=10)
    partitions = sorted(metadata.topics[topics.PREDICTION].partitions)
    if not partitions:
        raise NextbestError(f"topic {topics.PREDICTION} does not exist on {bootstrap}: create the topics first")
    assigned = []
    for partition in partitions:
        _, high = consumer.get_watermark_offsets(TopicPartition(topics.PREDICTION, partition), timeout=10)
        assigned.append(TopicPartition(topics.PREDICTION, partition, high))
    consumer.assign(assigned)
    return consumer


class Decisions:
    """First decision per uuid of the run's range with the right token.

    Decisions for uuids outside ``[low, high)`` (other runs' customers on a shared topic) are counted as foreign and
    ignored; decisions for the run's customers with another token are counted as token mismatches and ignored.
    """

    def __init__(self, consumer: Any, token: str, low: int, high: int, control_token: str | None = None) -> None:
        self.consumer = consumer
        self.token, self.control_token = token, control_token
        self.low, self.high = low, high
        self.values: dict[int, int] = {}
        self.control: dict[int, int] = {}  # decisions carrying the control token
        self.counts: Counter[str] = Counter()

    def poll(self, max_messages: int = 5000) -> None:
        while True:
            messages = self.consumer.consume(num_messages=max_messages, timeout=0)
            for message in messages:
                if message.error() is None:
                    self._read(message.value())
            if len(messages) < max_messages:
                return

    def _read(self, raw: bytes) -> None:
        try:
            record = json.loads(raw)
            uuid, value, token = int(record["uuid"]), int(record["value"]), record["token"]
        except (ValueError, TypeError, KeyError):
            self.counts["unreadable_decisions"] += 1
            return
        values = self.values if token == self.token else self.control if token == self.control_token else None
        if not self.low <= uuid < self.high:
            self.counts["foreign_decisions"] += 1
        elif values is None:
            self.counts["token_mismatches"] += 1
        elif uuid in values:
            self.counts["duplicate_decisions_read"] += 1
        else:
            values[uuid] = value


# ---------------------------------------------------------------------------------------------- the run


class TrafficRun:
    """One run's state: sends sessions on schedule, resolves decisions, posts outcomes, watches progress."""

    def __init__(self, config: TrafficConfig, world: World, client: PlatformClient, progress: Callable | None) -> None:
        self.config, self.world, self.client = config, world, client
        self.on_progress = progress or (lambda _sent, _platform: None)
        self.plan = make_plan(world, config.sessions, config.seed, config.max_delay, config.malformed_rate)
        self.style = config.feed_style()
        self.rng = np.random.default_rng([world.config.seed, CUSTOMER_STREAM + config.seed, 2])
        self.producer = _producer(config.bootstrap_servers)
        low, high = run_uuid_range(config.seed)
        self.decisions = Decisions(_prediction_consumer(config.bootstrap_servers), config.token, low, high,
                                   config.control_token)  # fmt: skip
        self.counts: Counter[str] = Counter()
        self.sent = 0
        self.second_sent_at = np.full(config.sessions, np.nan)
        self.second_halves: list[tuple[float, int, str, bytes]] = []
        self.unassigned: list[int] = []
        self.waiting: deque[int] = deque()  # new-arm sessions waiting for their decision, in sending order
        self.waiting_control: deque[int] = deque()  # original-arm sessions waiting for the control's decision
        self.ready: dict[int, dict[str, Any]] = {}  # resolved outcomes by session index, not posted yet
        self.frontier = 0  # the first session whose outcome is not posted yet
        self.new_decisions: list[dict[str, Any]] = []
        self.served: set[int] = set()  # sessions whose applied decision is the stream's
        self.platform: dict[str, Any] = {}

    def close(self) -> None:
        self.producer.flush(10)
        self.decisions.consumer.close()

    # -------------------------------------------------------------- readiness
    def wait_ready(self) -> float:
        """Send probe customers until one decision with the token returns; seconds waited."""
        low, _ = run_uuid_range(self.config.seed)
        probes = self.world.sample(PROBES, stream=PROBE_STREAM + self.config.seed, uuid_start=low)
        demographic, historic = self.world.messages(probes)
        start = time.monotonic()
        for topic, records in ((topics.DEMOGRAPHIC, demographic), (topics.HISTORIC, historic)):
            for record in records:
                self.producer.produce(topic, json.dumps(record).encode(), str(record["uuid"]).encode())
        self.producer.flush(10)
        wanted = set(probes.uuid.tolist())
        served = (self.decisions.values, self.decisions.control) if self.config.control_token else (
            self.decisions.values,)  # fmt: skip
        while not all(wanted & values.keys() for values in served):
            if time.monotonic() - start > self.config.ready_timeout:
                raise NextbestError(
                    f"no decision with the experiment's token came back within {self.config.ready_timeout:.0f} s: "
                    "is the decision worker running with this token?"
                )
            time.sleep(0.05)
            self.decisions.poll()
        return time.monotonic() - start

    # -------------------------------------------------------------- sending
    def _send_due(self, now: float, start: float) -> None:
        config = self.config
        while self.sent < config.sessions and start + self.sent / config.rate <= now:
            i = self.sent
            (first_topic, first), (second_topic, second) = session_payloads(self.world, self.plan, i, self.rng,
                                                                            self.style)  # fmt: skip
            key = str(int(self.plan.customers.uuid[i])).encode()
            self._produce(first_topic, first, key)
            heapq.heappush(self.second_halves, (now + float(self.plan.delay[i]), i, second_topic, second))
            self.unassigned.append(i)
            self.sent += 1
            self.counts["malformed_customers"] += int(self.plan.malformed[i])
        while self.second_halves and self.second_halves[0][0] <= now:
            _, i, topic, payload = heapq.heappop(self.second_halves)
            self._produce(topic, payload, str(int(self.plan.customers.uuid[i])).encode())
            self.second_sent_at[i] = now
        self.producer.poll(0)

    def _produce(self, topic: str, payload: bytes, key: bytes) -> None:
        while True:
            try:
                self.producer.produce(topic, payload, key)
                return
            except BufferError:
                self.producer.poll(0.05)

    # -------------------------------------------------------------- resolving and posting
    def _assign(self) -> None:
        if not self.unassigned:
            return
        index, self.unassigned = self.unassigned, []
        if self.config.serve_all:
            self.waiting.extend(index)
            return
        uuids = [int(u) for u in self.plan.customers.uuid[index]]  # the shop's uuids are integers, sent as such
        for i, arm in zip(index, self.client.arms(self.config.experiment, uuids)):
            if arm == "original" and self.config.control_token is not None:
                self.waiting_control.append(i)
            elif arm == "original":
                self._outcome(i, "original", int(self.plan.original[i]))
            else:
                self.waiting.append(i)

    def _resolve_waiting(self, now: float, final: bool = False) -> None:
        arm = "served" if self.config.serve_all else "new"
        self.waiting = self._resolve(self.waiting, self.decisions.values, arm, now, final, post=True)
        if self.waiting_control:
            self.waiting_control = self._resolve(self.waiting_control, self.decisions.control, "original", now, final)

    def _resolve(self, waiting: deque[int], values: dict[int, int], arm: str, now: float, final: bool,
                 post: bool = False) -> deque[int]:  # fmt: skip
        """Apply the stream's decision to each waiting session of ``arm`` (malformed: 0; none within the decision
        timeout: 0, counted); the sessions still waiting."""
        still: deque[int] = deque()
        for i in waiting:
            uuid = int(self.plan.customers.uuid[i])
            if self.plan.malformed[i]:
                self.counts["malformed_fallbacks"] += 1
                self._outcome(i, arm, 0)
            elif uuid in values:
                value = values[uuid]
                if post:
                    self.new_decisions.append({"uuid": uuid, "value": value})
                self.served.add(i)
                self._outcome(i, arm, value)
            elif final or now - self.second_sent_at[i] > self.config.decision_timeout:
                self.counts["fallback_timeouts"] += 1
                self._outcome(i, arm, 0)
            else:
                still.append(i)
        return still

    def _outcome(self, i: int, arm: str, decision: int) -> None:
        revenue = float(self.plan.revenue[i, decision])
        self.ready[i] = {"uuid": int(self.plan.customers.uuid[i]), "arm": arm, "decision": decision,
                         "revenue": revenue, "_served": i in self.served}  # fmt: skip
        self.served.discard(i)

    def _in_session_order(self) -> list[dict[str, Any]]:
        """Resolved outcomes up to the first unresolved session: the platform receives them in session order (and
        ``topic_outcome`` too)."""
        outcomes = []
        now = time.time()
        while self.frontier in self.ready:
            outcome = self.ready.pop(self.frontier)
            outcomes.append(outcome)
            served = outcome.pop("_served")
            record = {**outcome, "experiment": self.config.experiment, "served": served, "at": now}
            self._produce(topics.OUTCOME, json.dumps(record).encode(), str(outcome["uuid"]).encode())
            self.counts[f"outcomes_{outcome['arm']}"] += 1
            self.counts["shown"] += outcome["decision"]
            self.frontier += 1
        return outcomes

    def _post(self) -> None:
        config = self.config
        if config.serve_all:  # no experiment: the outcomes go to topic_outcome only
            self.new_decisions = []
            self.counts["outcomes_logged"] += len(self._in_session_order())
            return
        if self.new_decisions:
            answer = self.client.post(config.experiment, config.token, "decisions", self.new_decisions)
            self.counts["decisions_posted"] += answer["accepted"]
            self.new_decisions = []
        outcomes = self._in_session_order()
        if outcomes:
            answer = self.client.post(config.experiment, config.token, "outcomes", outcomes)
            self.counts["outcomes_accepted"] += answer["accepted"]
            self.counts["outcomes_duplicates"] += answer["duplicates"]

    def _flush(self, now: float, final: bool = False) -> None:
        self.decisions.poll()
        self._assign()
        self._resolve_waiting(now, final)
        self._post()

    def _complete(self) -> bool:
        if self.config.serve_all:
            self.platform = {"progress": {"complete": self.frontier >= self.config.sessions,
                                          "outcomes": self.frontier, "planned": self.config.sessions}}  # fmt: skip
            self.on_progress(self.sent, self.platform["progress"])
            return bool(self.platform["progress"]["complete"])
        self.platform = self.client.experiment(self.config.experiment)
        self.on_progress(self.sent, self.platform["progress"])
        return bool(self.platform["progress"]["complete"])

    # -------------------------------------------------------------- the loop
    def run(self) -> dict[str, Any]:
        ready = self.wait_ready()
        start = time.monotonic()
        next_flush = next_check = start
        complete = False
        while not complete and (self.sent < self.config.sessions or self.second_halves or self.waiting
                                or self.waiting_control or self.unassigned):  # fmt: skip
            now = time.monotonic()
            self._send_due(now, start)
            self.decisions.poll()
            if now >= next_flush:
                self._flush(now)
                next_flush = now + self.config.batch_interval
            if now >= next_check:
                complete = self._complete()
                next_check = now + self.config.progress_interval
            time.sleep(0.002)
        seconds = time.monotonic() - start
        if not complete:
            self._flush(time.monotonic(), final=True)
            complete = self._complete()
        return self._summary(ready, seconds)

    def _summary(self, ready: float, seconds: float) -> dict[str, Any]:
        result = self.platform.get("result") or {}
        summary: dict[str, Any] = {
            "experiment": self.config.experiment,
            "sessions_planned": self.config.sessions,
            "sessions_sent": self.sent,
            "seconds": seconds,
            "sessions_per_second": self.sent / seconds if seconds > 0 else None,
            "pipeline_ready_seconds": ready,
            "complete": bool(self.platform["progress"]["complete"]),
            "progress": self.platform["progress"],
            **{key: int(self.counts[key]) for key in COUNTS},
            **{key: int(self.decisions.counts[key]) for key in DECISION_COUNTS},
            "decisions_matched": len(self.decisions.values),
            "control_decisions_matched": len(self.decisions.control),
            "unposted_at_stop": self.sent - self.frontier,
        }
        summary.update({key: result.get(key) for key in RESULT_KEYS})
        summary["config"] = {key: value for key, value in asdict(self.config).items() if key != "token"}
        summary["feed_style"] = asdict(self.style)
        return summary


COUNTS = ("outcomes_original", "outcomes_new", "outcomes_served", "outcomes_logged", "shown", "malformed_customers",
          "malformed_fallbacks",
          "fallback_timeouts", "decisions_posted", "outcomes_accepted", "outcomes_duplicates")  # fmt: skip
DECISION_COUNTS = ("foreign_decisions", "token_mismatches", "duplicate_decisions_read", "unreadable_decisions")
RESULT_KEYS = ("verdict", "effect", "ci", "p_value", "improves", "improves_by_target", "srm_p_value", "srm_flagged",
               "n_original", "n_new")  # fmt: skip


def check_platform(client: PlatformClient, experiment: int, token: str) -> dict[str, Any]:
    """The experiment as the platform has it, after checking that it exists and that the token opens it."""
    found = client.experiment(experiment)
    client.check_token(experiment, token)
    return found


def run_traffic(
    config: TrafficConfig, world: World, progress: Callable[[int, dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """Play the experiment's traffic (see the module docstring); the summary of every figure of the run.

    ``progress(sessions_sent, platform_progress)`` is called at each progress check (for a progress bar).
    """
    config.check()
    client = PlatformClient(config.platform)
    try:
        if not config.serve_all:
            check_platform(client, config.experiment, config.token)
        run = TrafficRun(config, world, client, progress)
        try:
            return run.run()
        finally:
            run.close()
    finally:
        client.close()
