"""The Lambda Runtime API loop for the bench's Python function (function.py), standing in for
AWS's runtime interface client: awslambdaric 4.2.2 from PyPI crashed (SIGSEGV) on its first
`next` here. It does what Lambda's Python runtime does per invocation, and less (no log
framing, no X-Ray header): take the next event, call the handler, post its answer, on one
kept-alive connection. `AWS_LAMBDA_RUNTIME_API` is `host:port[/prefix]`, as Lambda sets it."""
import http.client
import json
import sys
import traceback

import function

api = sys.argv[1] if len(sys.argv) > 1 else __import__("os").environ["AWS_LAMBDA_RUNTIME_API"]
host, _, prefix = api.partition("/")
base = (f"/{prefix}" if prefix else "") + "/2018-06-01/runtime/invocation"
conn = http.client.HTTPConnection(host)


class Context:
    """The parts of Lambda's context object Powertools reads."""

    def __init__(self, headers):
        self.aws_request_id = headers.get("Lambda-Runtime-Aws-Request-Id")
        self.invoked_function_arn = headers.get("Lambda-Runtime-Invoked-Function-Arn")
        self.function_name = "bench"

    def get_remaining_time_in_millis(self):
        return 60_000


def post(path, body):
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    conn.getresponse().read()


while True:
    conn.request("GET", f"{base}/next")
    resp = conn.getresponse()
    event = json.loads(resp.read())
    ctx = Context(resp.headers)
    try:
        answer = json.dumps(function.lambda_handler(event, ctx))
        post(f"{base}/{ctx.aws_request_id}/response", answer)
    except Exception as e:  # noqa: BLE001 - reported to the Runtime API, as Lambda's runtime does
        traceback.print_exc()
        error = json.dumps({"errorMessage": str(e), "errorType": type(e).__name__})
        post(f"{base}/{ctx.aws_request_id}/error", error)
