"""The typical public solution, written for the benchmark: boto3 + psycopg2, one INSERT per
message, commit and delete per receive. Masks with SHA-256 like most take-home answers do
(less work than AES-SIV, so the comparison flatters it). Drains until a receive is empty."""
import argparse
import hashlib
import json
from datetime import datetime, timezone

import boto3
import psycopg2


def version(v):
    if v is None:
        return None
    parts = [int(p) for p in v.split(".")]
    parts += [0] * (3 - len(parts))
    return parts[0] * 10000 + parts[1] * 100 + parts[2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--queue-url", required=True)
    ap.add_argument("--database-url", required=True)
    args = ap.parse_args()
    sqs = boto3.client("sqs")
    db = psycopg2.connect(args.database_url)
    cur = db.cursor()
    while True:
        resp = sqs.receive_message(
            QueueUrl=args.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
            AttributeNames=["SentTimestamp"])
        msgs = resp.get("Messages", [])
        if not msgs:
            break
        for m in msgs:
            try:
                e = json.loads(m["Body"])
                sent = datetime.fromtimestamp(int(m["Attributes"]["SentTimestamp"]) / 1000, timezone.utc)
                cur.execute(
                    "INSERT INTO user_logins (user_id, device_type, masked_ip, masked_device_id, locale, app_version, create_date)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (e["user_id"], e["device_type"],
                     hashlib.sha256(e["ip"].encode()).hexdigest() if e["ip"] else None,
                     hashlib.sha256(e["device_id"].encode()).hexdigest() if e["device_id"] else None,
                     e["locale"], version(e["app_version"]), sent.date()))
            except Exception:  # noqa: BLE001 - the typical answer skips bad messages
                db.rollback()
        db.commit()
        sqs.delete_message_batch(
            QueueUrl=args.queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)])


if __name__ == "__main__":
    main()
