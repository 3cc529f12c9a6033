"""The bench's reference for the Lambda section (`bench --only lambda`): what a user would
write instead of sqs2pg-lambda. An SQS-triggered function on AWS Lambda Powertools'
BatchProcessor (partial batch responses), psycopg 3 inserting row by row in one transaction per
event (a record that fails validation raises before its insert, so BatchProcessor reports it
alone; per-record commits cost it 10 fsyncs per event, which would make the comparison
unfair), and the same AES-256-SIV tokens as
sqs2pg (src/mask: associated data [column, kid], `v1:<kid>:<base64url>`, IPv4 as its
IPv4-mapped IPv6 bytes), so the bench can check its rows equal sqs2pg's. It keeps no ledger
of message ids, so a redelivery doubles a row: less work than sqs2pg does, which flatters it.

Configured like sqs2pg-lambda: DATABASE_URL and SQS2PG_KEYS (`kid=base64 of 64 bytes`).
Run by examples/bench/python_lambda/runtime.py under the Lambda Runtime API."""
import base64
import ipaddress
import json
import os
from datetime import datetime, timezone

import psycopg
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

KID, _, KEY = os.environ["SQS2PG_KEYS"].split(",")[0].partition("=")
SIV = AESSIV(base64.b64decode(KEY))
DB = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
INSERT = (
    "INSERT INTO user_logins (user_id, device_type, masked_ip, masked_device_id, locale,"
    " app_version, create_date) VALUES (%s, %s, %s, %s, %s, %s, %s)"
)
processor = BatchProcessor(event_type=EventType.SQS)


def token(column, plaintext):
    ct = SIV.encrypt(plaintext, [column.encode(), KID.encode()])
    return f"v1:{KID}:" + base64.urlsafe_b64encode(ct).rstrip(b"=").decode()


def ip_bytes(text):
    ip = ipaddress.ip_address(text)
    if ip.version == 4:
        return ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + ip.packed).packed
    return ip.packed


def version(v):
    if v is None:
        return None
    parts = [int(p) for p in v.split(".")]
    if len(parts) > 3 or any(p < 0 for p in parts) or any(p >= 100 for p in parts[1:]):
        raise ValueError("bad app_version")
    parts += [0] * (3 - len(parts))
    return parts[0] * 10000 + parts[1] * 100 + parts[2]


def record_handler(record: SQSRecord):
    e = json.loads(record.body)
    if not e["user_id"]:
        raise ValueError("empty user_id")
    sent = int(record.attributes.sent_timestamp) / 1000
    ip, device = e["ip"], e["device_id"]
    DB.execute(INSERT, (
        e["user_id"], e["device_type"],
        token("ip", ip_bytes(ip)) if ip is not None else None,
        token("device_id", device.encode()) if device is not None else None,
        e["locale"], version(e["app_version"]),
        datetime.fromtimestamp(sent, timezone.utc).date()))


def lambda_handler(event, context):
    with DB.transaction():
        return process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context)
