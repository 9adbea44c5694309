"""A producer and two consumers of messages over an in-process queue, traced with the
OpenTelemetry SDK for Python and its OTLP exporters, following OpenTelemetry's semantic
conventions for messaging. Nothing here knows Muninn: any OTLP receiver gets the same spans.

- `py-checkout` sends each message (a PRODUCER span "send <destination>") and puts the W3C
  trace context in the message's headers;
- `py-billing` processes each message (a CONSUMER span "process <destination>", child of the
  producer's span through the headers);
- `py-audit` receives all of them in one batch (one CONSUMER span "receive <destination>" with a
  link per message, each link carrying that message's `messaging.message.id`).

Usage: otel_messaging.py --endpoint URL --protocol http|grpc --destination NAME --messages N

`--endpoint` is the OTLP base URL (`http://127.0.0.1:4320` for OTLP/HTTP, whose exporter posts
to `<endpoint>/v1/traces`; `http://127.0.0.1:4317` for OTLP/gRPC). Prints one JSON line with the
message ids and the trace ids, and exits 1 if any export failed.
"""

import argparse
import json
import queue
import sys
import threading
import uuid

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Link, SpanKind


class CheckedExporter(SpanExporter):
    """Passes spans to the real exporter and remembers whether every export succeeded."""

    def __init__(self, inner):
        self.inner = inner
        self.failures = 0

    def export(self, spans):
        result = self.inner.export(spans)
        if result != SpanExportResult.SUCCESS:
            self.failures += 1
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis=30000):
        return self.inner.force_flush(timeout_millis)


def otlp_exporter(protocol, endpoint):
    if protocol == "http":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces", timeout=10)
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    # TLS for an https endpoint, trusting OTEL_EXPORTER_OTLP_CERTIFICATE as any service would.
    return OTLPSpanExporter(
        endpoint=endpoint, insecure=not endpoint.startswith("https://"), timeout=10
    )


def tracer_provider(service, exporter):
    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "service.version": "1.0.0"})
    )
    # The batch processor is what services run; it exports on its own thread.
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=200))
    return provider


def messaging_attributes(destination, operation_type, operation_name):
    return {
        "messaging.system": "kafka",
        "messaging.destination.name": destination,
        "messaging.operation.type": operation_type,
        "messaging.operation.name": operation_name,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--protocol", choices=["http", "grpc"], required=True)
    parser.add_argument("--destination", required=True)
    parser.add_argument("--messages", type=int, default=5)
    args = parser.parse_args()

    exporters = {
        service: CheckedExporter(otlp_exporter(args.protocol, args.endpoint))
        for service in ["py-checkout", "py-billing", "py-audit"]
    }
    providers = {
        service: tracer_provider(service, exporter) for service, exporter in exporters.items()
    }
    tracer = {
        service: provider.get_tracer("otel_messaging", "1.0.0")
        for service, provider in providers.items()
    }
    destination = args.destination
    to_billing = queue.Queue()
    delivered = []
    message_ids = []
    trace_ids = []

    def consume():
        while True:
            message = to_billing.get()
            if message is None:
                return
            parent = propagate.extract(message["headers"])
            with tracer["py-billing"].start_as_current_span(
                f"process {destination}",
                context=parent,
                kind=SpanKind.CONSUMER,
                attributes={
                    **messaging_attributes(destination, "process", "process"),
                    "messaging.message.id": message["id"],
                    "messaging.consumer.group.name": "billing",
                    "messaging.kafka.message.offset": message["offset"],
                },
            ):
                pass
            delivered.append(message)

    consumer = threading.Thread(target=consume)
    consumer.start()
    for offset in range(args.messages):
        message_id = str(uuid.uuid4())
        with tracer["py-checkout"].start_as_current_span(
            f"send {destination}",
            kind=SpanKind.PRODUCER,
            attributes={
                **messaging_attributes(destination, "send", "send"),
                "messaging.message.id": message_id,
                "messaging.kafka.destination.partition": 0,
                "messaging.kafka.message.offset": offset,
                "order.total": 10.5 + offset,
            },
        ) as span:
            headers = {}
            propagate.inject(headers)
            trace_ids.append(format(span.get_span_context().trace_id, "032x"))
        message_ids.append(message_id)
        to_billing.put({"id": message_id, "headers": headers, "offset": offset})
    to_billing.put(None)
    consumer.join()

    links = []
    for message in delivered:
        producer_context = trace.get_current_span(
            propagate.extract(message["headers"])
        ).get_span_context()
        links.append(Link(producer_context, {"messaging.message.id": message["id"]}))
    with tracer["py-audit"].start_as_current_span(
        f"receive {destination}",
        kind=SpanKind.CONSUMER,
        links=links,
        attributes={
            **messaging_attributes(destination, "receive", "poll"),
            "messaging.batch.message_count": len(links),
            "messaging.consumer.group.name": "audit",
        },
    ):
        pass

    for provider in providers.values():
        provider.shutdown()
    failures = sum(exporter.failures for exporter in exporters.values())
    print(json.dumps({"message_ids": message_ids, "trace_ids": trace_ids}))
    if failures:
        print(f"{failures} OTLP export(s) failed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
