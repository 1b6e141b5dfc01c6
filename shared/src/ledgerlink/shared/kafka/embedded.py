"""An embedded Kafka broker for development and tests: librdkafka's mock cluster.

No Kafka broker can be installed from the package registries we use, but the
``confluent-kafka`` wheel ships librdkafka, whose *mock cluster* speaks the Kafka
protocol over TCP. We drive its C API through :mod:`ctypes`.

Known limits (measured with aiokafka): produce, fetch, idempotent producers,
single-member consumer groups and offset commits work; consumer groups with two or
more members fail in SyncGroup; the admin CreateTopics request fails, so topics are
created through the mock cluster's own API (:meth:`EmbeddedKafka.create_topic`).
It keeps everything in memory, and at most 5 MiB per partition (a limit compiled into
librdkafka): older records beyond that are silently dropped. **Never use it in production.**
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading
from types import TracebackType

import confluent_kafka

_RD_KAFKA_PRODUCER = 0


class EmbeddedKafkaError(RuntimeError):
    """The mock cluster could not be created or refused an operation."""


def _load_librdkafka() -> ctypes.CDLL:
    package_dir = os.path.dirname(confluent_kafka.__file__)
    candidates = sorted(
        glob.glob(os.path.join(package_dir, os.pardir, "confluent_kafka.libs", "librdkafka*.so*"))
        + glob.glob(os.path.join(package_dir, ".dylibs", "librdkafka*.dylib"))
    )
    if not candidates:
        raise EmbeddedKafkaError("librdkafka was not found inside the confluent-kafka wheel")
    lib = ctypes.CDLL(candidates[0])
    lib.rd_kafka_conf_new.restype = ctypes.c_void_p
    lib.rd_kafka_conf_set.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_size_t,
    ]
    lib.rd_kafka_conf_set.restype = ctypes.c_int
    lib.rd_kafka_new.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.rd_kafka_new.restype = ctypes.c_void_p
    lib.rd_kafka_destroy.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_mock_cluster_new.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.rd_kafka_mock_cluster_new.restype = ctypes.c_void_p
    lib.rd_kafka_mock_cluster_destroy.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_mock_cluster_bootstraps.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_mock_cluster_bootstraps.restype = ctypes.c_char_p
    lib.rd_kafka_mock_topic_create.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_int,
    ]
    lib.rd_kafka_mock_topic_create.restype = ctypes.c_int
    lib.rd_kafka_err2str.argtypes = [ctypes.c_int]
    lib.rd_kafka_err2str.restype = ctypes.c_char_p
    return lib


class EmbeddedKafka:
    """An in-process Kafka mock cluster reachable over TCP on 127.0.0.1.

    Use as a context manager or call :meth:`start` / :meth:`close`.
    """

    def __init__(self, brokers: int = 1) -> None:
        self._brokers = brokers
        self._lib: ctypes.CDLL | None = None
        self._handle: int | None = None
        self._cluster: int | None = None
        self._bootstrap = ""
        self._topics: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def bootstrap_servers(self) -> str:
        """The ``host:port[,host:port]`` list clients connect to."""
        if not self._bootstrap:
            raise EmbeddedKafkaError("the embedded broker is not running")
        return self._bootstrap

    @property
    def topics(self) -> dict[str, int]:
        """Topics created so far, with their partition counts."""
        return dict(self._topics)

    def start(self) -> EmbeddedKafka:
        """Create the mock cluster; its brokers listen on ephemeral ports."""
        with self._lock:
            if self._cluster is not None:
                return self
            lib = _load_librdkafka()
            errstr = ctypes.create_string_buffer(512)
            conf = lib.rd_kafka_conf_new()
            # The handle only hosts the cluster's threads; silence its "no bootstrap" warning.
            lib.rd_kafka_conf_set(conf, b"log_level", b"3", errstr, len(errstr))
            handle = lib.rd_kafka_new(_RD_KAFKA_PRODUCER, conf, errstr, len(errstr))
            if not handle:
                raise EmbeddedKafkaError(f"rd_kafka_new failed: {errstr.value.decode()}")
            cluster = lib.rd_kafka_mock_cluster_new(handle, self._brokers)
            if not cluster:
                lib.rd_kafka_destroy(handle)
                raise EmbeddedKafkaError("rd_kafka_mock_cluster_new failed")
            self._lib, self._handle, self._cluster = lib, handle, cluster
            self._bootstrap = lib.rd_kafka_mock_cluster_bootstraps(cluster).decode()
            return self

    def create_topic(self, name: str, partitions: int = 1, replication_factor: int = 1) -> None:
        """Create ``name`` with ``partitions`` partitions (idempotent for the same count)."""
        with self._lock:
            if self._lib is None or self._cluster is None:
                raise EmbeddedKafkaError("the embedded broker is not running")
            if name in self._topics:
                if self._topics[name] != partitions:
                    raise EmbeddedKafkaError(
                        f"topic {name!r} exists with {self._topics[name]} partition(s), "
                        f"not {partitions}"
                    )
                return
            err = self._lib.rd_kafka_mock_topic_create(
                self._cluster, name.encode(), partitions, replication_factor
            )
            if err != 0:
                reason = self._lib.rd_kafka_err2str(err).decode()
                raise EmbeddedKafkaError(f"creating topic {name!r} failed: {reason}")
            self._topics[name] = partitions

    def close(self) -> None:
        """Destroy the cluster; clients connected to it will see their connections drop."""
        with self._lock:
            if self._lib is not None and self._cluster is not None and self._handle is not None:
                self._lib.rd_kafka_mock_cluster_destroy(self._cluster)
                self._lib.rd_kafka_destroy(self._handle)
            self._lib = self._handle = self._cluster = None
            self._bootstrap = ""
            self._topics.clear()

    def __enter__(self) -> EmbeddedKafka:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
