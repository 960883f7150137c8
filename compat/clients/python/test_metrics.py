"""The broker's /metrics, scraped while a real client produces and consumes.

The text is parsed with the Prometheus project's own OpenMetrics parser
(prometheus_client), which rejects anything a Prometheus server would not
take; the counters must move by exactly what the client did.
"""

import os
import time
import urllib.request
import uuid

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.openmetrics.parser import text_string_to_metric_families

RECORDS = 1000
PARTITIONS = 3


@pytest.fixture(scope="module")
def admin_url() -> str:
    addr = os.environ.get("STROM_ADMIN")
    if not addr:
        if os.environ.get("STROM_TEST_BOOTSTRAP"):
            pytest.skip("running against another cluster: no Strom admin listener")
        pytest.fail("STROM_ADMIN is not set: scripts/test.sh exports the admin listener's HOST:PORT")
    return f"http://{addr}"


def scrape(admin_url: str) -> dict:
    """Every sample as {(name, frozenset(labels)): value}, parsed strictly."""
    with urllib.request.urlopen(f"{admin_url}/metrics", timeout=10) as response:
        assert response.status == 200
        content_type = response.headers["Content-Type"]
        text = response.read().decode()
    assert content_type.startswith("application/openmetrics-text"), content_type
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: dict, name: str, **labels) -> float:
    """Sum over every series of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def test_counters_move_by_what_the_client_did(bootstrap, admin_url):
    topic = f"metrics-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
        future.result(30)

    before = scrape(admin_url)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all"})
    payload = 0
    for i in range(RECORDS):
        value_bytes = f"reading-{i}".encode()
        payload += len(value_bytes)
        producer.produce(topic, key=str(i).encode(), value=value_bytes, partition=i % PARTITIONS)
    assert producer.flush(30) == 0

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"metrics-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    received = 0
    deadline = time.monotonic() + 60
    while received < RECORDS and time.monotonic() < deadline:
        message = consumer.poll(0.1)
        if message is not None and message.error() is None:
            received += 1
    assert received == RECORDS
    # Scrape while the consumer is still connected and polling.
    after = scrape(admin_url)
    consumer.close()

    assert value(after, "strom_produce_records_total", topic=topic) == RECORDS
    assert value(after, "strom_produce_bytes_total", topic=topic) >= payload
    # Whole stored batches are counted, and every record was fetched once.
    assert value(after, "strom_fetch_records_total", topic=topic) == RECORDS
    assert total(after, "strom_log_end_offset", topic=topic) == RECORDS
    assert total(after, "strom_log_start_offset", topic=topic) == 0

    produce_requests = total(after, "strom_requests_total", api="Produce") - total(
        before, "strom_requests_total", api="Produce"
    )
    assert produce_requests >= 1
    # Every request timed, in every stage, and the histograms are well formed.
    for name in (
        "strom_request_duration_seconds",
        "strom_request_queue_duration_seconds",
        "strom_request_processing_duration_seconds",
        "strom_response_send_duration_seconds",
    ):
        count = value(after, f"{name}_count", api="Produce") - value(
            before, f"{name}_count", api="Produce"
        )
        assert count == produce_requests, name
        buckets = sorted(
            (float(dict(ls)["le"]), v)
            for (n, ls), v in after.items()
            if n == f"{name}_bucket" and ("api", "Produce") in ls
        )
        assert buckets[-1] == (float("inf"), value(after, f"{name}_count", api="Produce"))
        assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), name
    assert value(after, "strom_ready") == 1
    assert value(after, "strom_connections_open") >= 1
    assert value(after, "strom_process_resident_memory_bytes") > 0
    assert total(after, "strom_groups") >= 1
