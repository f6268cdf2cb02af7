"""Taobao UserBehavior events -> sessions -> the page table, in DuckDB (streamed from disk, never in pandas).

Input: CSV without header, ``user_id,item_id,category_id,behavior_type,timestamp`` (behavior pv, cart, fav, buy;
Unix seconds). The full public data set has ~100M rows (3.5 GB); ``../shared/data/taobao/`` holds a real sample.

Output (Parquet), one row per page, in the page schema shared with the RL page-level logs:

    session_id      user_id * 100_000 + the session's number for that user (0, 1, ...)
    page_id         depth of the page in its session (1, 2, ...)
    hour            local hour (UTC+8, Taobao's time zone) of the page's first event, 0-23
    purchase_power  the user's purchases in sessions *before* this one, capped at 10 (no look-ahead)
    engagement      clicks (pv) + add-to-carts on the page
    page_value      purchases on the page (UserBehavior carries no prices: one unit per purchase)
    reward          = page_value
    done            1 on the last page of the session (the user churned after it), else 0

Sessions break at gaps longer than ``gap_seconds`` (30 min); a page is ``events_per_page`` consecutive events.
Rows DuckDB cannot parse, and rows with an unknown behavior, are counted and reported with their line numbers
(``SessionizeResult.malformed``), never silently dropped; a line DuckDB rejects for several reasons counts once.

Two engines build the same table from the same SQL (``pages_sql``): DuckDB on this machine (``sessionize``, the
default) and Apache Spark on a cluster (``nextbest.data.taobao_spark``). ``sessionize_to_lake`` is the one entry
that chooses (``engine="duckdb" | "spark"``) and writes the lake's page table.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nextbest.errors import DataError

if TYPE_CHECKING:
    from nextbest.data.lake import Lake

PAGE_COLUMNS = ["session_id", "page_id", "hour", "purchase_power", "engagement", "page_value", "reward", "done"]
BEHAVIORS = ("pv", "cart", "fav", "buy")
MAX_REPORTED = 20
ENGINES = ("duckdb", "spark")
DEFAULT_SPARK_MASTER = "local[2]"


@dataclass
class SessionizeConfig:
    gap_seconds: int = 1800
    events_per_page: int = 10
    utc_offset_hours: int = 8
    memory_limit: str = "3GB"
    threads: int = 2
    temp_directory: str | None = None


@dataclass
class SessionizeResult:
    """What was read and written; ``malformed`` lists up to 20 (line, reason) pairs, ``malformed_rows`` counts all."""

    source: str
    out: str
    rows: int
    events: int
    sessions: int
    pages: int
    malformed_rows: int
    seconds: float
    malformed: list[tuple[int, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {**self.__dict__, "malformed": [{"line": line, "reason": why} for line, why in self.malformed]}


def _connect(config: SessionizeConfig) -> Any:
    try:
        import duckdb
    except ImportError as error:
        raise DataError("sessionizing needs DuckDB: pip install duckdb") from error
    connection = duckdb.connect()
    connection.execute(f"SET threads = {int(config.threads)}")
    connection.execute(f"SET memory_limit = '{config.memory_limit}'")
    connection.execute("SET preserve_insertion_order = false")
    connection.execute("SET enable_progress_bar = false")
    if config.temp_directory:
        connection.execute(f"SET temp_directory = '{config.temp_directory}'")
    return connection


_EVENTS = """
CREATE TEMP TABLE events AS
SELECT user_id, item_id, behavior_type, ts
FROM read_csv(?, header = false, delim = ',', store_rejects = true, auto_detect = false,
              columns = {'user_id': 'BIGINT', 'item_id': 'BIGINT', 'category_id': 'BIGINT',
                         'behavior_type': 'VARCHAR', 'ts': 'BIGINT'})
"""

# The page table from a table ``{events}`` of (user_id, item_id, behavior_type, ts): one SELECT that DuckDB and
# Spark SQL both run (``{div}`` is integer division truncating toward zero: DuckDB's ``//``, Spark's ``DIV``; NULLs
# sort last in both, as DuckDB's default does).
_PAGES = """
  WITH marked AS (
    SELECT user_id, behavior_type, ts,
           ROW_NUMBER() OVER w AS rn,
           CASE WHEN ts - LAG(ts) OVER w <= {gap} THEN 0 ELSE 1 END AS starts
    FROM {events} WHERE behavior_type IN ('pv', 'cart', 'fav', 'buy')
    WINDOW w AS (PARTITION BY user_id ORDER BY ts NULLS LAST, item_id NULLS LAST, behavior_type NULLS LAST)
  ), numbered AS (
    SELECT user_id, behavior_type, ts, rn,
           SUM(starts) OVER w - 1 AS session_no,
           MAX(CASE WHEN starts = 1 THEN rn END) OVER w AS first_rn
    FROM marked
    WINDOW w AS (PARTITION BY user_id ORDER BY rn ROWS UNBOUNDED PRECEDING)
  ), pages AS (
    SELECT user_id, session_no,
           ((rn - first_rn) {div} {per_page}) + 1 AS page_id,
           MIN(ts) AS first_ts,
           COUNT(*) FILTER (WHERE behavior_type IN ('pv', 'cart')) AS engagement,
           COUNT(*) FILTER (WHERE behavior_type = 'buy') AS page_value
    FROM numbered GROUP BY ALL
  ), sessions AS (
    SELECT user_id, session_no, MAX(page_id) AS last_page, SUM(page_value) AS buys
    FROM pages GROUP BY ALL
  ), power AS (
    SELECT user_id, session_no, last_page,
           LEAST(10, COALESCE(SUM(buys) OVER (PARTITION BY user_id ORDER BY session_no
                                            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)) AS purchase_power
    FROM sessions
  )
  SELECT CAST(p.user_id * 100000 + p.session_no AS BIGINT) AS session_id,
         CAST(p.page_id AS INTEGER) AS page_id,
         CAST(((p.first_ts + {offset}) % 86400) {div} 3600 AS TINYINT) AS hour,
         CAST(s.purchase_power AS TINYINT) AS purchase_power,
         CAST(p.engagement AS INTEGER) AS engagement,
         CAST(p.page_value AS DOUBLE) AS page_value,
         CAST(p.page_value AS DOUBLE) AS reward,
         CAST(p.page_id = s.last_page AS TINYINT) AS done
  FROM pages p JOIN power s USING (user_id, session_no)
"""


def pages_sql(events: str, config: SessionizeConfig, div: str = "//") -> str:
    """The SELECT of the page table from the events table ``events`` (see ``_PAGES``); ``div``: the dialect's
    truncating integer division (``//`` in DuckDB, ``DIV`` in Spark SQL)."""
    return _PAGES.format(events=events, gap=int(config.gap_seconds), per_page=int(config.events_per_page),
                         offset=int(config.utc_offset_hours) * 3600, div=div)  # fmt: skip


# A line DuckDB rejects gets one row in reject_errors per problem (a short line one per missing column, a long one
# per extra column, a bad number per column): it counts once, with the reason that says most (the column count
# when it is wrong, else the first column that did not convert).
_REJECTED_LINES = """
SELECT line, error_message FROM reject_errors
QUALIFY ROW_NUMBER() OVER (PARTITION BY line ORDER BY error_type = 'CAST',
                           CASE WHEN error_type = 'TOO MANY COLUMNS' THEN -CAST(column_idx AS BIGINT)
                                ELSE column_idx END) = 1
ORDER BY line LIMIT {limit}
"""


def _rejects(connection: Any) -> tuple[int, list[tuple[int, str]]]:
    import duckdb

    try:
        count = connection.execute("SELECT COUNT(DISTINCT line) FROM reject_errors").fetchone()[0]
    except duckdb.CatalogException:  # some DuckDB versions create no reject table when nothing was rejected
        return 0, []
    rows = connection.execute(_REJECTED_LINES.format(limit=MAX_REPORTED)).fetchall()
    return int(count), [(int(line), str(message).splitlines()[0]) for line, message in rows]


def _unknown_behaviors(connection: Any) -> tuple[int, list[tuple[int, str]]]:
    known = ", ".join(f"'{b}'" for b in BEHAVIORS)
    count = connection.execute(f"SELECT COUNT(*) FROM events WHERE behavior_type NOT IN ({known}) "
                               "OR behavior_type IS NULL OR user_id IS NULL OR ts IS NULL").fetchone()[0]  # fmt: skip
    return int(count), []


def sessionize(source: str | Path, out: str | Path, config: SessionizeConfig | None = None) -> SessionizeResult:
    """Read ``source`` (UserBehavior CSV), write the page table to ``out`` (Parquet). See the module docstring."""
    config = config or SessionizeConfig()
    source, out = Path(source), Path(out)
    if not source.is_file():
        raise DataError(f"{source} not found")
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    connection = _connect(config)
    try:
        connection.execute(_EVENTS, [str(source)])
        rejected, examples = _rejects(connection)
        unknown, _ = _unknown_behaviors(connection)
        rows = connection.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        target = str(out).replace("'", "''")
        connection.execute(f"COPY ({pages_sql('events', config)}) TO '{target}' (FORMAT parquet, COMPRESSION zstd)")
        pages, sessions = connection.execute(
            f"SELECT COUNT(*), COUNT(DISTINCT session_id) FROM read_parquet('{str(out).replace(chr(39), chr(39) * 2)}')"
        ).fetchone()
    except Exception as error:  # noqa: BLE001 - DuckDB raises many error types for a bad file
        if isinstance(error, DataError):
            raise
        raise DataError(f"{source}: cannot sessionize ({str(error).splitlines()[0]})") from error
    finally:
        connection.close()
    return SessionizeResult(
        str(source), str(out), int(rows + rejected), int(rows - unknown), int(sessions), int(pages),
        int(rejected + unknown), round(time.perf_counter() - started, 3), examples,
    )  # fmt: skip


def check_engine(engine: str) -> str:
    """``engine`` if it is one of ``ENGINES``, else a DataError naming the choices."""
    if engine not in ENGINES:
        raise DataError(f"engine {engine!r}: choose one of {', '.join(ENGINES)}")
    return engine


def sessionize_to_lake(source: str | Path, lake: Lake, config: SessionizeConfig | None = None, *,
                       engine: str = "duckdb", spark: Any = None,
                       spark_master: str = DEFAULT_SPARK_MASTER) -> SessionizeResult:  # fmt: skip
    """Sessionize the UserBehavior CSV ``source`` into ``lake``'s page table (``processed/pages.parquet``) with
    ``engine``: "duckdb" here (a local Parquet file, then uploaded), or "spark" on ``spark`` (a SparkSession) or,
    without one, on a session opened on ``spark_master`` for this call (``local[N]``, ``spark://HOST:PORT``; see
    ``nextbest.data.taobao_spark``), which writes the table into the lake itself. The result's ``out`` is the
    table's path in the lake; the table is the same whichever engine built it."""
    check_engine(engine)
    if engine == "duckdb":
        with tempfile.TemporaryDirectory() as tmp:
            done = sessionize(source, Path(tmp) / "pages.parquet", config)
            done.out = lake.put_table("pages", Path(tmp) / "pages.parquet")
        return done
    from nextbest.data.taobao_spark import lake_filesystem, open_spark, sessionize_spark

    with open_spark(spark_master, spark) as session:
        return sessionize_spark(session, source, lake.path("pages"), config, fs=lake_filesystem(session, lake))


_SYNTHETIC = """
COPY (
  SELECT i // {per_user} + 1 AS user_id,
         hash(i, {seed}, 1) % 5000000 + 1 AS item_id,
         hash(i, {seed}, 2) % 10000 + 1 AS category_id,
         CASE WHEN hash(i, {seed}, 3) % 1000 < 25 THEN 'buy'
              WHEN hash(i, {seed}, 3) % 1000 < 55 THEN 'fav'
              WHEN hash(i, {seed}, 3) % 1000 < 110 THEN 'cart' ELSE 'pv' END AS behavior_type,
         1511539200 + (i % {per_user}) * 90 + ((i % {per_user}) // 12) * 7200
           + (hash(i // {per_user}, {seed}, 4) % 86400) AS ts
  FROM range({rows}) t(i)
) TO '{out}' (FORMAT csv, HEADER false)
"""


def write_synthetic_userbehavior(path: str | Path, rows: int, seed: int = 0, events_per_user: int = 100) -> Path:
    """A UserBehavior-format CSV of ``rows`` events (users in file order, each with sessions of ~12 events)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = _connect(SessionizeConfig())
    try:
        connection.execute(_SYNTHETIC.format(per_user=int(events_per_user), seed=int(seed), rows=int(rows),
                                             out=str(path).replace("'", "''")))  # fmt: skip
    finally:
        connection.close()
    return path
