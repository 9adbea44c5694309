"""A real Zipkin reporter against Muninn: py_zipkin records one checkout trace and posts it as
Zipkin v2 JSON (Encoding.V2_JSON) to POST /api/v2/spans with a transport handler, as an
instrumented Python service would. Prints {"trace_id", "event_id"} as JSON for the Rust test
(tests/api/zipkin.rs) to read the spans back.

Usage: python zipkin_reporter.py http://127.0.0.1:PORT
"""

import json
import sys
import urllib.request
import uuid

from py_zipkin import Encoding
from py_zipkin import Kind
from py_zipkin.transport import BaseTransportHandler
from py_zipkin.zipkin import zipkin_span


class MuninnTransport(BaseTransportHandler):
    """POSTs each encoded batch to Muninn's Zipkin endpoint; Zipkin answers 202."""

    def __init__(self, base_url):
        super().__init__()
        self.url = base_url.rstrip("/") + "/api/v2/spans"
        self.batches = 0

    def get_max_payload_bytes(self):
        return None

    def send(self, payload):
        body = payload if isinstance(payload, bytes) else payload.encode("utf-8")
        request = urllib.request.Request(
            self.url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status != 202:
                raise RuntimeError(f"{self.url} answered {response.status}: {response.read()!r}")
        self.batches += 1


def main():
    transport = MuninnTransport(sys.argv[1])
    event_id = str(uuid.uuid4())
    messaging = {
        "messaging.system": "kafka",
        "kafka.topic": "orders",
        "message.id": event_id,
        "cloudevents.event_type": "order.created",
    }
    with zipkin_span(
        service_name="shop-web",
        span_name="post /checkout",
        transport_handler=transport,
        sample_rate=100.0,
        encoding=Encoding.V2_JSON,
        kind=Kind.SERVER,
        use_128bit_trace_id=True,
        binary_annotations={"http.method": "POST"},
    ) as root:
        trace_id = root.zipkin_attrs.trace_id
        with zipkin_span(
            service_name="shop-web", span_name="charge card", kind=Kind.CLIENT
        ) as charge:
            charge.add_sa_binary_annotation(port=443, service_name="payments-api", host="10.0.0.9")
            charge.update_binary_annotations({"error": "card declined"})
        with zipkin_span(
            service_name="shop-web",
            span_name="send order.created",
            kind=Kind.PRODUCER,
            binary_annotations=dict(messaging),
        ):
            pass
        with zipkin_span(
            service_name="shop-worker",
            span_name="process order.created",
            kind=Kind.CONSUMER,
            binary_annotations=dict(messaging),
        ):
            with zipkin_span(service_name="shop-worker", span_name="reserve stock"):
                pass
    if transport.batches == 0:
        raise RuntimeError("py_zipkin sent nothing")
    print(json.dumps({"trace_id": trace_id, "event_id": event_id}))


if __name__ == "__main__":
    main()
