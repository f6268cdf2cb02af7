"""Taobao UserBehavior events -> sessions -> the page table on Apache Spark: the same table DuckDB builds.

    with open_spark("spark://127.0.0.1:7077") as spark:     # a standalone cluster; or "local[2]" in this process
        result = sessionize_spark(spark, "UserBehavior.csv", "pages.parquet")

The pages come from the SQL DuckDB runs (``nextbest.data.taobao.pages_sql``, in Spark SQL's dialect); what differs
is reading the CSV. Spark reads the lines as text and parses them as DuckDB's ``read_csv`` does with the five typed
columns of ``nextbest.data.taobao``: fields split at commas (a field in double quotes may hold commas, ``""`` is a
quote), an empty field is NULL, the four BIGINT columns take surrounding spaces or tabs, a sign, digits with single
``_`` between them, a decimal or exponent rounded half away from zero, ``0x`` hex and ``0b`` binary. A line with
another number of fields, or with a number DuckDB cannot convert to a BIGINT, is rejected: counted once, and reported
with its line number and DuckDB's reason (``SessionizeResult.malformed``); empty lines are skipped. Rows with an
unknown behavior or a NULL user or time are read and counted as DuckDB counts them. So the result's counts and
the table (after a sort on session_id, page_id) are DuckDB's.

Where the data live: Spark's executors read ``source`` and write ``out`` themselves, so on a cluster of several
machines both must be on storage every worker sees (a shared folder, HDFS, or the lake's S3 bucket via ``s3a://``).
``out`` is one Parquet file, as DuckDB writes it: Spark writes into a staging folder next to it, then the part file
is moved into place (with ``fs``, an fsspec filesystem, for a lake on S3). An ``s3://`` lake needs the
``hadoop-aws`` jar (of Spark's Hadoop version) and the AWS SDK bundle it depends on (``aws-java-sdk-bundle`` up to
Hadoop 3.3, ``software.amazon.awssdk:bundle`` from 3.4), through ``spark.jars.packages`` or ``--jars``;
``lake_filesystem`` checks for them first and says so in one line when they are missing.

Networking: this module opens a Spark session only on the master URL its caller names (``open_spark``), and
checks first that a ``spark://`` master answers.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from nextbest.data.taobao import (
    BEHAVIORS,
    DEFAULT_SPARK_MASTER,
    MAX_REPORTED,
    SessionizeConfig,
    SessionizeResult,
    pages_sql,
)
from nextbest.errors import DataError

if TYPE_CHECKING:
    from nextbest.data.lake import Lake

COLUMNS = ("user_id", "item_id", "category_id", "behavior_type", "ts")
NUMERIC = ("user_id", "item_id", "category_id", "ts")
S3A_CLASS = "org.apache.hadoop.fs.s3a.S3AFileSystem"
#: The JVM's logging: errors only (Spark's default prints a screen of start-up warnings).
LOG4J2 = Path(__file__).with_name("spark") / "log4j2.properties"
S3A_MISSING = ("the Spark engine cannot reach an s3:// lake: this Spark has no S3A filesystem (add the hadoop-aws "
               "jar of Spark's Hadoop version and the AWS SDK bundle with spark.jars.packages or --jars, see the "
               "README), or use a local lake or the duckdb engine")  # fmt: skip
# One CSV field: start of line or a comma, then a quoted field ("" is a quote inside) or an unquoted one.
_FIELD = r'(?:^|,)("(?:[^"]|"")*"|[^,"]*)'
_DECIMAL = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"


# ---------------------------------------------------------------------------------------------- the session
def find_java() -> str:
    """The ``java`` Spark will start (``$JAVA_HOME/bin/java``, else the one on PATH); a DataError when there is
    none (Spark 4 needs Java 17 or newer)."""
    home = os.environ.get("JAVA_HOME")
    if home:
        java = Path(home) / "bin" / "java"
        if not os.access(java, os.X_OK):
            raise DataError(f"the Spark engine needs Java 17 or newer, and JAVA_HOME={home} has no bin/java: "
                            "point JAVA_HOME at a JDK/JRE or use the duckdb engine")  # fmt: skip
        return str(java)
    java = shutil.which("java")
    if java is None:
        raise DataError("the Spark engine needs Java 17 or newer, and there is no java on PATH (JAVA_HOME is unset): "
                        "install a JRE (make test installs default-jre-headless) or use the duckdb engine")  # fmt: skip
    return java


def _import_pyspark() -> Any:
    try:
        with warnings.catch_warnings():  # PySpark's column converters import pyspark.testing.utils, which warns
            # about pandas >= 3 on import; nothing here goes through pandas, so import it once, quietly
            warnings.filterwarnings("ignore", ".*PySpark does not yet fully support pandas", FutureWarning)
            import pyspark.testing.utils  # noqa: F401
            from pyspark.sql import SparkSession
    except ImportError as error:
        raise DataError("the Spark engine needs PySpark: pip install 'nextbest[scale]'") from error
    return SparkSession


def _loopback(master: str) -> bool:
    if master.startswith("local"):
        return True
    host = urlparse(master).hostname or ""
    return host in ("127.0.0.1", "localhost", "::1")


def _check_master(master: str, timeout: float = 5.0) -> None:
    """A ``spark://HOST:PORT`` master must answer (a standalone driver would otherwise retry for a minute)."""
    if not master.startswith("spark://"):
        if not (master.startswith("local") or "://" in master or master == "yarn"):
            raise DataError(f"Spark master {master!r}: give local[N] or spark://HOST:PORT")
        return
    for address in master.removeprefix("spark://").split(","):  # a standalone HA master list: host:port,host:port
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout):
                return
        except (OSError, ValueError):
            continue
    raise DataError(f"no Spark master answers at {master}")


def spark_session(master: str = DEFAULT_SPARK_MASTER, *, app_name: str = "nextbest-sessionize",
                  driver_memory: str | None = None, executor_memory: str | None = None,
                  executor_cores: int | None = None, shuffle_partitions: int | None = None,
                  conf: dict[str, str] | None = None) -> Any:  # fmt: skip
    """A SparkSession on ``master`` (``local[N]``: N cores in this process; ``spark://HOST:PORT``: a standalone
    cluster), without the web UI. The driver's and executors' memory, the executors' cores and the shuffle
    partitions are Spark's (its defaults, or the cluster's ``spark-defaults.conf``) unless given here; ``conf``
    adds any Spark setting (e.g. ``spark.jars.packages``). Java missing, a master that does not answer or a JVM
    that does not start is a one-line DataError."""
    find_java()
    _check_master(master)
    session_class = _import_pyspark()
    settings = {"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false",
                "spark.pyspark.python": sys.executable}  # fmt: skip
    for key, value in (("spark.driver.memory", driver_memory), ("spark.executor.memory", executor_memory),
                       ("spark.executor.cores", executor_cores), ("spark.sql.shuffle.partitions", shuffle_partitions)):
        if value is not None:
            settings[key] = str(value)
    quiet = f"-Dlog4j2.configurationFile={LOG4J2.as_uri()}"  # errors only: no start-up warnings on stderr
    settings.update({"spark.driver.extraJavaOptions": quiet, "spark.executor.extraJavaOptions": quiet})
    if _loopback(master):
        settings.update({"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"})
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = session_class.builder.master(master).appName(app_name)
    for key, value in {**settings, **(conf or {})}.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as error:  # noqa: BLE001 - PySpark raises its own and Py4J's errors when the JVM fails
        raise DataError(f"cannot start Spark on {master}: {_reason(error)}") from error
    spark.sparkContext.setLogLevel("ERROR")
    return spark


@contextmanager
def open_spark(master: str = DEFAULT_SPARK_MASTER, spark: Any = None, **settings: Any) -> Iterator[Any]:
    """``spark`` as is when given; else the session this process already runs on ``master``, or a new one
    (``spark_session(master, **settings)``) stopped at the end. A session on another master is a DataError: one
    process holds one SparkContext."""
    if spark is not None:
        yield spark
        return
    find_java()
    session_class = _import_pyspark()
    active = session_class.getActiveSession()
    if active is not None:
        running = active.sparkContext.master
        if running != master:
            raise DataError(f"this process already runs Spark on {running}, not on {master}: use that master")
        yield active
        return
    spark = spark_session(master, **settings)
    try:
        yield spark
    finally:
        spark.stop()


def _reason(error: BaseException) -> str:
    """The first informative line of a Spark error (Py4J wraps the Java exception after a generic line)."""
    java = getattr(error, "java_exception", None)
    text = str(java) if java is not None else str(error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


# ---------------------------------------------------------------------------------------------- paths and the lake
def spark_path(path: str | Path) -> str:
    """The URI Spark reads and writes for ``path``: ``s3://`` becomes ``s3a://`` (Hadoop's S3 filesystem), a local
    path an absolute ``file://`` URI, other URIs (``hdfs://``, ``s3a://``) stay."""
    text = str(path)
    if text.startswith("s3://"):
        return "s3a://" + text.removeprefix("s3://")
    if "://" in text:
        return text
    return Path(text).resolve().as_uri()


def lake_filesystem(spark: Any, lake: Lake) -> Any:
    """The filesystem ``sessionize_spark`` moves the lake's table with: None (local) for a folder; for an ``s3://``
    lake, after checking that this Spark has the S3A filesystem (else a one-line DataError, ``S3A_MISSING``) and
    giving it the lake's endpoint and keys, the lake's fsspec filesystem."""
    if not lake.is_s3:
        return None
    if not spark._jvm.org.apache.spark.util.Utils.classIsLoadable(S3A_CLASS):
        raise DataError(S3A_MISSING)
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    settings = lake.s3_settings()
    for key, value in (("fs.s3a.endpoint", settings["endpoint_url"]), ("fs.s3a.access.key", settings["key"]),
                       ("fs.s3a.secret.key", settings["secret"])):  # fmt: skip
        if value:
            hadoop.set(key, value)
    if settings["endpoint_url"]:  # an S3-compatible server (SeaweedFS, MinIO): bucket in the path, maybe plain HTTP
        hadoop.set("fs.s3a.path.style.access", "true")
        hadoop.set("fs.s3a.connection.ssl.enabled", str(settings["endpoint_url"].startswith("https")).lower())
    return lake.fs


# ---------------------------------------------------------------------------------------------- reading the CSV
def _bigint(raw: Any) -> Any:
    """``raw`` (a string column) as DuckDB casts it to BIGINT; NULL when it does not convert (or is NULL)."""
    from pyspark.sql import functions as F

    plain = raw.try_cast("bigint")  # digits, a sign, surrounding whitespace: nearly every value takes this path
    text = F.regexp_replace(F.regexp_replace(raw, r"^[ \t]+|[ \t]+$", ""), r"(?<=[0-9])_(?=[0-9])", "")
    decimal = F.when(text.rlike(_DECIMAL), F.round(text.try_cast("decimal(38,18)")).try_cast("bigint"))
    hexadecimal = F.when(text.rlike("^0[xX][0-9a-fA-F]+$"), F.conv(text.substr(F.lit(3), F.length(text)), 16, 10))
    binary = F.when(text.rlike("^0[bB][01]+$"), F.conv(text.substr(F.lit(3), F.length(text)), 2, 10))
    slow = F.coalesce(text.try_cast("bigint"), decimal, hexadecimal.try_cast("bigint"), binary.try_cast("bigint"))
    return F.when(raw.isNull(), None).otherwise(F.coalesce(plain, slow))


def _unquote(field: Any) -> Any:
    from pyspark.sql import functions as F

    quoted = field.startswith('"') & field.endswith('"') & (F.length(field) >= 2)
    inner = F.regexp_replace(field.substr(F.lit(2), F.length(field) - 2), '""', '"')
    return F.when(quoted, inner).otherwise(field)


def parse_lines(spark: Any, source: str) -> Any:
    """The CSV's lines as Spark parses them: ``block`` (start of the file split) and ``mid`` (the line's id in its
    split, in file order) locate a line; ``empty``; ``rejected`` with ``reason``; and the typed columns."""
    from pyspark.sql import functions as F

    text = F.col("value")
    no_bom = F.when(text.startswith("\ufeff"), text.substr(F.lit(2), F.length(text))).otherwise(text)  # as DuckDB
    lines = spark.read.text(source).select(
        no_bom.alias("value"), F.col("_metadata.file_block_start").alias("block"),
        F.monotonically_increasing_id().alias("mid"))  # fmt: skip
    value = F.col("value")
    quoted = value.contains('"')
    fields = F.when(quoted, F.regexp_extract_all(value, F.lit(_FIELD), 1)).otherwise(F.split(value, ",", -1))
    raw = {}
    for index, name in enumerate(COLUMNS):
        field = F.try_element_at(F.col("fields"), F.lit(index + 1))
        field = F.when(quoted, _unquote(field)).otherwise(field)
        raw[name] = F.when(field == "", None).otherwise(field)
    parsed = lines.withColumn("fields", fields).select(
        "block", "mid", (value == "").alias("empty"), F.size("fields").alias("n"),
        *(raw[name].alias(f"raw_{name}") for name in COLUMNS))
    parsed = parsed.select("*", *(_bigint(F.col(f"raw_{name}")).alias(name) for name in NUMERIC))
    reason = F.when(F.col("n") != len(COLUMNS),
                    F.concat(F.lit(f"Expected Number of Columns: {len(COLUMNS)} Found: "), F.col("n").cast("string")))
    for name in NUMERIC:
        failed = F.col(f"raw_{name}").isNotNull() & F.col(name).isNull()
        message = F.concat(F.lit(f'Error when converting column "{name}". Could not convert string "'),
                           F.col(f"raw_{name}"), F.lit("\" to 'BIGINT'"))  # fmt: skip
        reason = reason.when(failed, message)
    return parsed.select("block", "mid", "empty", "user_id", "item_id", F.col("raw_behavior_type").alias(
        "behavior_type"), "ts", F.when(~F.col("empty"), reason).alias("reason")).withColumn(
        "rejected", F.col("reason").isNotNull())  # fmt: skip


def _counts(parsed: Any) -> tuple[int, int, int]:
    """One pass over the lines: the rows (non-empty lines), the rejected lines, and the rows DuckDB reads but counts
    as malformed (unknown behavior, NULL user or time)."""
    from pyspark.sql import functions as F

    known = F.coalesce(F.col("behavior_type").isin(*BEHAVIORS), F.lit(False))
    unknown = ~F.col("rejected") & ~F.col("empty") & (~known | F.col("user_id").isNull() | F.col("ts").isNull())
    counts = parsed.agg(F.sum((~F.col("empty")).cast("long")), F.sum(F.col("rejected").cast("long")),
                        F.sum(unknown.cast("long"))).first()  # fmt: skip
    return int(counts[0] or 0), int(counts[1] or 0), int(counts[2] or 0)


def _examples(parsed: Any) -> list[tuple[int, str]]:
    """The first ``MAX_REPORTED`` rejected lines as (line number, reason), numbered as DuckDB numbers them (from 1,
    empty lines included): a line's number is the lines of the file splits before its own, plus its place in its
    split (its id minus the split's first id), plus one."""
    from pyspark.sql import functions as F

    splits = {int(row["block"]): (int(row["lines"]), int(row["first"])) for row in parsed.groupBy("block").agg(
        F.count(F.lit(1)).alias("lines"), F.min("mid").alias("first")).collect()}  # fmt: skip
    before, offset = {}, 0
    for block in sorted(splits):
        before[block] = offset
        offset += splits[block][0]
    rows = (parsed.filter("rejected").select("block", "mid", "reason").orderBy("block", "mid")
            .limit(MAX_REPORTED).collect())  # fmt: skip
    return [(before[int(r["block"])] + int(r["mid"]) - splits[int(r["block"])][1] + 1, str(r["reason"])) for r in rows]


# ---------------------------------------------------------------------------------------------- writing one file
def _write_one_file(frame: Any, out: str, fs: Any) -> None:
    """``frame`` as the single Parquet file ``out`` (zstd): written by Spark into a staging folder next to ``out``,
    then its one part file moved into place (with ``fs`` when given, else on the local disk)."""
    parent, _, name = out.rstrip("/").rpartition("/")
    staging = f"{parent}/.{name}.spark-{uuid.uuid4().hex[:12]}"
    if fs is None:
        Path(parent).mkdir(parents=True, exist_ok=True)
    try:
        frame.repartition(1).write.mode("overwrite").option("compression", "zstd").parquet(spark_path(staging))
        if fs is None:
            parts = sorted(str(p) for p in Path(staging).glob("part-*.parquet"))
        else:
            parts = sorted(str(p) for p in fs.glob(f"{staging}/part-*.parquet"))
        if len(parts) != 1:
            raise DataError(f"Spark wrote {len(parts)} part files for {out}, expected one")
        if fs is None:
            os.replace(parts[0], out)
        else:
            fs.mv(parts[0], out)
    finally:
        if fs is None:
            shutil.rmtree(staging, ignore_errors=True)
        elif fs.exists(staging):
            fs.rm(staging, recursive=True)


# ---------------------------------------------------------------------------------------------- the sessionizer
def sessionize_spark(spark: Any, source: str | Path, out: str | Path, config: SessionizeConfig | None = None, *,
                     fs: Any = None) -> SessionizeResult:  # fmt: skip
    """Read ``source`` (UserBehavior CSV: a local file, or a URI every worker can read) on ``spark``, write the page
    table to ``out`` (one Parquet file; with ``fs``, an fsspec filesystem holding it, e.g. the lake's S3). The same
    result and table as ``nextbest.data.taobao.sessionize`` (see the module docstring)."""
    from pyspark import StorageLevel

    config = config or SessionizeConfig()
    text = str(source)
    if "://" not in text and not Path(text).is_file():
        raise DataError(f"{source} not found")
    out = str(out) if "://" in str(out) else str(Path(out).resolve())
    started = time.perf_counter()
    view = f"nextbest_events_{uuid.uuid4().hex[:12]}"
    parsed = None
    try:
        # kept (memory, spilling to disk): the counts and the pages then parse the CSV once, not twice
        parsed = parse_lines(spark, spark_path(text)).persist(StorageLevel.MEMORY_AND_DISK)
        rows, rejected, unknown = _counts(parsed)
        examples = _examples(parsed) if rejected else []
        parsed.filter("NOT empty AND NOT rejected").select("user_id", "item_id", "behavior_type", "ts") \
            .createOrReplaceTempView(view)
        _write_one_file(spark.sql(pages_sql(view, config, div="DIV")), out, fs)
        counts = spark.read.parquet(spark_path(out)).selectExpr("COUNT(*)", "COUNT(DISTINCT session_id)").first()
    except DataError:
        raise
    except Exception as error:  # noqa: BLE001 - Spark raises analysis, Py4J and runtime errors for a bad file
        raise DataError(f"{source}: cannot sessionize with Spark ({_reason(error)})") from error
    finally:
        spark.catalog.dropTempView(view)
        if parsed is not None:
            parsed.unpersist()
    pages, sessions = int(counts[0]), int(counts[1])
    return SessionizeResult(text, out, rows, rows - rejected - unknown, sessions, pages, rejected + unknown,
                            round(time.perf_counter() - started, 3), examples)  # fmt: skip
