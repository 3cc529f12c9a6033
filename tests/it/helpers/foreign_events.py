"""Real events from moto's server into an SQS queue on it, as S3, EventBridge and SNS send them.

Usage: python foreign_events.py produce KIND QUEUE_URL
       python foreign_events.py receive QUEUE_URL N

  produce  makes moto's S3 (a bucket whose notification configuration targets the queue; moto
           sends an s3:TestEvent when it is set, then an ObjectCreated:Put per put_object),
           EventBridge (a rule on a bus of the queue's name whose target is the queue;
           put_events of an OrderPlaced, a Heartbeat and a RefundIssued), or SNS (a topic with
           the queue subscribed, raw delivery off; two publishes) send their events to the queue.
           Prints the number of messages the queue will receive.
  receive  receives until N messages are held and a receive after them finds none (at most
           30 s), deletes them, and prints their bodies, as they arrived, as one JSON array of
           strings (more or fewer than N if the queue held that many).

KIND is s3, eventbridge or sns. The endpoint is SQS2PG_MOTO_URL (default
http://127.0.0.1:5000), the region AWS_REGION (default us-east-1). Every resource is named after
the queue, so tests with their own queues never share one.
"""

import json
import os
import sys
import time

import boto3

ENDPOINT = os.environ.get("SQS2PG_MOTO_URL", "http://127.0.0.1:5000")
REGION = os.environ.get("AWS_REGION", "us-east-1")


def client(service):
    return boto3.client(
        service,
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
    )


def queue_arn(queue_url):
    attrs = client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    return attrs["Attributes"]["QueueArn"]


def queue_name(queue_url):
    return queue_url.rstrip("/").rsplit("/", 1)[-1]


def produce_s3(queue_url):
    s3 = client("s3")
    bucket = f"{queue_name(queue_url)}-bucket".lower()
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {"QueueArn": queue_arn(queue_url), "Events": ["s3:ObjectCreated:*"]}
            ]
        },
    )
    s3.put_object(Bucket=bucket, Key="reports/2026/q4 summary.csv", Body=b"a,b\n1,2\n")
    # The test event, and one ObjectCreated per object.
    return 2


ORDER = {
    "order": {
        "id": "ORD-1001",
        "amount": 1234.56,
        "currency": "EUR",
        "items": [
            {"sku": "SKU-1", "qty": 2, "price": 10.5},
            {"sku": "SKU-2", "qty": 1, "price": 1213.56},
        ],
    },
    "customer": {"id": "C-77", "email": "ada@example.com"},
}


def produce_eventbridge(queue_url):
    events = client("events")
    bus = f"{queue_name(queue_url)}-bus"
    try:
        events.create_event_bus(Name=bus)
    except events.exceptions.ResourceAlreadyExistsException:
        pass  # a second produce on the same queue
    rule = f"{queue_name(queue_url)}-rule"
    events.put_rule(Name=rule, EventBusName=bus, EventPattern=json.dumps({"source": ["shop.orders"]}))
    events.put_targets(
        Rule=rule,
        EventBusName=bus,
        Targets=[{"Id": "queue", "Arn": queue_arn(queue_url)}],
    )
    entries = [
        ("OrderPlaced", ORDER),
        ("Heartbeat", {"at": "2026-12-07T01:00:00Z"}),
        ("RefundIssued", {"order": {"id": "ORD-0999"}, "amount": "5.00"}),
    ]
    out = events.put_events(
        Entries=[
            {"Source": "shop.orders", "DetailType": t, "Detail": json.dumps(d), "EventBusName": bus}
            for t, d in entries
        ]
    )
    assert out.get("FailedEntryCount", 0) == 0, out
    return len(entries)


def produce_sns(queue_url):
    sns = client("sns")
    topic = sns.create_topic(Name=f"{queue_name(queue_url)}-topic")["TopicArn"]
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=queue_arn(queue_url),
        Attributes={"RawMessageDelivery": "false"},
    )
    messages = [
        {"user": {"id": "U-1"}, "action": "signup", "plan": "pro", "seats": 3},
        {"user": {"id": "U-2"}, "action": "cancel", "plan": "free", "seats": 1},
    ]
    for m in messages:
        sns.publish(TopicArn=topic, Message=json.dumps(m), Subject="account")
    return len(messages)


def receive(queue_url, n):
    sqs = client("sqs")
    bodies = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        messages = got.get("Messages", [])
        for m in messages:
            bodies.append(m["Body"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
        # Once N are held, one more receive that finds nothing: so a message more than N
        # shows up too.
        if len(bodies) >= n and not messages:
            break
    print(json.dumps(bodies))


def main(argv):
    if len(argv) == 4 and argv[1] == "produce":
        kinds = {"s3": produce_s3, "eventbridge": produce_eventbridge, "sns": produce_sns}
        if argv[2] not in kinds:
            sys.exit(f"unknown kind {argv[2]!r}: use s3, eventbridge or sns")
        print(kinds[argv[2]](argv[3]))
    elif len(argv) == 4 and argv[1] == "receive":
        receive(argv[2], int(argv[3]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
