"""Webhook interoperability check: tollgate's outbound events against the Standard Webhooks library.

Proves, against a running server, that the events tollgate sends to a webhook endpoint verify
with `standardwebhooks` (the Standard Webhooks project's own library, which shares no code with
tollgate) given nothing but the endpoint's secret, and that deliveries keep their promises. The
script runs its own receiver on 127.0.0.1 and subscribes it to every event type:

  1. the endpoint is made with its secret (`whsec_...`), which no later read shows;
  2. a grant to a new reader arrives as `grant.created` and `reader.entitlements.changed`
     (sequence 1, nothing before, `articles` after), each verifying with the secret, with one
     signature, its `webhook-id` the event's id;
  3. forgeries are rejected with the library's WebhookVerificationError: a changed body,
     another secret, another `webhook-id`, another `webhook-timestamp`;
  4. after a secret rotation, the grant's revocation arrives as `grant.revoked` and
     `reader.entitlements.changed` (sequence 2) with two signatures, the new secret's first,
     and verifies with the old secret and with the new one, each on its own;
  5. a delivery answered 500 comes again with the same `webhook-id` and body, and verifies;
  6. the endpoint's deliveries are listed `delivered`, the one answered 500 after 2 attempts,
     and the reader's entitlements changed exactly twice;
  7. an operator's retry of a delivery and a replay of the time range send the events again,
     each with its `webhook-id`;
  8. the endpoint is deleted, and reads 404 afterwards.

The server must let the receiver be a target (TOLLGATE_WEBHOOK_ALLOWED_HOSTS=127.0.0.1,
TOLLGATE_ALLOW_INSECURE_WEBHOOK_URLS=true, TOLLGATE_ALLOW_PRIVATE_WEBHOOK_TARGETS=true) and
retry within seconds (TOLLGATE_WEBHOOK_DELIVERY_BACKOFF=1s,
TOLLGATE_WEBHOOK_DISPATCH_INTERVAL=200ms): each wait for a delivery gives up after 20 s.

    python -m venv venv && venv/bin/pip install -r tests/interop/requirements.txt
    venv/bin/python tests/interop/verify_webhooks.py http://127.0.0.1:PORT ADMIN_KEY

Prints an `ok - ...` line per check (one per forgery in 3); on the first failure prints why and
exits non-zero. It creates readers with random ids, so it can run again against the same
database, and deletes its endpoint when it ends: run it against a test server only.
"""

import base64
import json
import re
import secrets
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

# How long a check waits for a delivery (or for the server to record one) before it fails.
WAIT_SECONDS = 20
RECEIVER_PATH = "/hooks"
ENDPOINT_ID = re.compile(r"^we_[0-9a-f]{32}$")
DELIVERY_ID = re.compile(r"^dlv_[0-9a-f]{32}$")
EVENT_ID = re.compile(r"^msg_[0-9a-f]{32}$")
SECRET = re.compile(r"^whsec_[A-Za-z0-9+/]{43}=$")
SIGNATURE = re.compile(r"^v1,[A-Za-z0-9+/]{43}=$")


class CheckFailed(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise CheckFailed(message)


@dataclass
class Answer:
    status: int
    headers: dict
    body: object


class Api:
    """The few tollgate calls the checks need, over urllib."""

    def __init__(self, base_url, key):
        self.base_url = base_url.rstrip("/")
        self.key = key

    def call(self, method, path, body=None, expected=(200,)):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        request.add_header("Authorization", f"Bearer {self.key}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, headers, text = response.status, response.headers, response.read().decode()
        except urllib.error.HTTPError as error:
            status, headers, text = error.code, error.headers, error.read().decode(errors="replace")
        except urllib.error.URLError as error:
            raise CheckFailed(f"{method} {path}: {error.reason}") from error
        expect(status in expected, f"{method} {path} answered {status}: {text}")
        headers = {name.lower(): value for name, value in headers.items()}
        return Answer(status, headers, json.loads(text) if text else None)

    def create_endpoint(self, url, event_types):
        body = {"url": url, "event_types": event_types, "description": "interop check"}
        return self.call("POST", "/v1/webhook-endpoints", body, expected=(201,))

    def endpoint(self, endpoint_id, expected=(200,)):
        return self.call("GET", f"/v1/webhook-endpoints/{endpoint_id}", expected=expected)

    def rotate(self, endpoint_id):
        return self.call("POST", f"/v1/webhook-endpoints/{endpoint_id}/rotate-secret").body

    def deliveries(self, endpoint_id, status=None):
        """Every delivery of the endpoint, following `next_cursor`."""
        items, after = [], None
        while True:
            query = "limit=500" + (f"&status={status}" if status else "") + (f"&after={after}" if after else "")
            page = self.call("GET", f"/v1/webhook-endpoints/{endpoint_id}/deliveries?{query}").body
            items += page["items"]
            after = page["next_cursor"]
            if after is None:
                return items

    def retry(self, endpoint_id, delivery_id):
        path = f"/v1/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/retry"
        return self.call("POST", path, expected=(202,)).body

    def replay(self, endpoint_id, start, end):
        body = {"from": rfc3339(start), "to": rfc3339(end)}
        return self.call("POST", f"/v1/webhook-endpoints/{endpoint_id}/replay", body, expected=(202,)).body

    def delete_endpoint(self, endpoint_id):
        self.call("DELETE", f"/v1/webhook-endpoints/{endpoint_id}", expected=(204,))

    def grant(self, reader_id, entitlements):
        expires_at = rfc3339(datetime.now(timezone.utc) + timedelta(days=1))
        body = {"entitlements": entitlements, "expires_at": expires_at, "reason": "interop check"}
        return self.call("POST", f"/v1/readers/{reader_id}/grants", body, expected=(201,)).body

    def revoke(self, reader_id, grant_id):
        self.call("DELETE", f"/v1/readers/{reader_id}/grants/{grant_id}", expected=(204,))


@dataclass
class Delivery:
    """One request the receiver got: what a publisher's service sees, and what it answered."""

    headers: dict  # names in lower case
    body: bytes
    answered: int

    @property
    def event(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    @property
    def webhook_id(self):
        return self.headers.get("webhook-id")

    def describe(self):
        event = self.event or {}
        return f"{event.get('type')} {self.webhook_id} (answered {self.answered})"


class Receiver:
    """A publisher's webhook endpoint on 127.0.0.1: keeps every request, answers 200, or 500 to
    the first delivery of an event that `fail_first` selects."""

    def __init__(self):
        self.changed = threading.Condition()
        self.deliveries = []
        self.fail_first = None
        self.failed_ids = set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.read_body()
                headers = {name.lower(): value for name, value in self.headers.items()}
                with receiver.changed:
                    delivery = Delivery(headers, body, 200)
                    if self.path != RECEIVER_PATH:
                        delivery.answered = 404
                    elif receiver.should_fail(delivery):
                        delivery.answered = 500
                    receiver.deliveries.append(delivery)
                    receiver.changed.notify_all()
                self.send_response(delivery.answered)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def read_body(self):
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        chunk = self.rfile.read(size)
                        self.rfile.readline()
                        if size == 0:
                            # Trailers, if any, end with an empty line.
                            while self.rfile.readline().strip():
                                pass
                            return b"".join(chunks)
                        chunks.append(chunk)
                return self.rfile.read(int(self.headers.get("Content-Length", 0)))

            def log_message(self, format, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{RECEIVER_PATH}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def should_fail(self, delivery):
        event = delivery.event
        if self.fail_first is None or event is None or not self.fail_first(event):
            return False
        if delivery.webhook_id in self.failed_ids:
            return False
        self.failed_ids.add(delivery.webhook_id)
        return True

    def wait_for(self, what, matches, count=1):
        """The first `count` deliveries whose event `matches`, once that many have arrived."""
        deadline = time.monotonic() + WAIT_SECONDS
        with self.changed:
            while True:
                found = [d for d in self.deliveries if d.event is not None and matches(d.event)]
                if len(found) >= count:
                    return found[:count]
                left = deadline - time.monotonic()
                if left <= 0:
                    got = ", ".join(d.describe() for d in self.deliveries[-10:]) or "nothing"
                    raise CheckFailed(
                        f"{count} delivery(ies) of {what} did not arrive within {WAIT_SECONDS} s "
                        f"({len(found)} did); the receiver's last: {got}"
                    )
                self.changed.wait(left)

    def all(self):
        with self.changed:
            return list(self.deliveries)


def ok(message):
    print(f"ok - {message}", flush=True)


def unique(prefix):
    return f"{prefix}-{secrets.token_hex(6)}"


def rfc3339(instant):
    return instant.astimezone(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_instant(text):
    # Python before 3.11 does not read a "Z" suffix.
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def poll(what, attempt):
    """Calls `attempt` until it returns something truthy, for up to WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        result = attempt()
        if result:
            return result
        if time.monotonic() > deadline:
            raise CheckFailed(f"{what}: not within {WAIT_SECONDS} s")
        time.sleep(0.2)


def of_type(event_type, **data):
    """Selects events of a type whose data has these values."""
    return lambda event: event.get("type") == event_type and all(
        (event.get("data") or {}).get(name) == value for name, value in data.items()
    )


def verify(secret, delivery, what):
    """Verifies as a receiver should, over the raw body with every header received; returns
    the event the library parsed."""
    try:
        event = Webhook(secret).verify(delivery.body, delivery.headers)
    except WebhookVerificationError as error:
        raise CheckFailed(f"{what} does not verify: {error}") from error
    expect(event == delivery.event, f"{what}: the library parsed {event!r}")
    return event


def expect_rejected(secret, body, headers, what):
    """Returns the library's reason for rejecting; fails if the delivery verified or if
    something other than a WebhookVerificationError was raised (a crash is not a rejection)."""
    try:
        Webhook(secret).verify(body, headers)
    except WebhookVerificationError as error:
        return str(error)
    except Exception as error:
        raise CheckFailed(f"{what}: raised {type(error).__name__} ({error}), not a verification error") from error
    raise CheckFailed(f"{what}: the library accepted it")


def signatures(delivery):
    signature = delivery.headers.get("webhook-signature", "")
    parts = signature.split(" ")
    expect(all(SIGNATURE.match(part) for part in parts), f"webhook-signature is {signature!r}")
    return parts


def expect_envelope(delivery, event_type):
    """The headers and envelope every delivery carries; returns the event's `data`."""
    event = delivery.event
    expect(isinstance(event, dict), f"the body is not a JSON object: {delivery.body[:200]!r}")
    expect(set(event) == {"id", "type", "timestamp", "data"}, f"the event's fields are {sorted(event)}")
    expect(event["type"] == event_type, f"type is {event['type']!r}, expected {event_type!r}")
    expect(EVENT_ID.match(event["id"] or ""), f"id is {event['id']!r}")
    expect(delivery.webhook_id == event["id"], f"webhook-id {delivery.webhook_id!r} is not the event's id {event['id']!r}")
    expect(
        delivery.headers.get("content-type", "").startswith("application/json"),
        f"content-type is {delivery.headers.get('content-type')!r}",
    )
    expect(
        delivery.headers.get("user-agent", "").startswith("tollgate-webhooks/"),
        f"user-agent is {delivery.headers.get('user-agent')!r}",
    )
    expect(
        re.fullmatch(r"[0-9]+", delivery.headers.get("webhook-timestamp", "")),
        f"webhook-timestamp is {delivery.headers.get('webhook-timestamp')!r}",
    )
    expect(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["timestamp"]), f"timestamp is {event['timestamp']!r}")
    expect(isinstance(event["data"], dict), f"data is {event['data']!r}")
    return event["data"]


def expect_entitlements_changed(delivery, reader_id, before, after, sequence):
    data = expect_envelope(delivery, "reader.entitlements.changed")
    expect(data.get("reader_id") == reader_id, f"reader_id is {data.get('reader_id')!r}")
    expect(data.get("before") == before, f"before is {data.get('before')!r}, expected {before!r}")
    expect(data.get("after") == after, f"after is {data.get('after')!r}, expected {after!r}")
    expect(data.get("cause") == "grant", f"cause is {data.get('cause')!r}, expected 'grant'")
    expect(type(data.get("sequence")) is int, f"sequence is not an integer: {data.get('sequence')!r}")
    expect(data["sequence"] == sequence, f"sequence is {data['sequence']}, expected {sequence}")


def check_endpoint(api, receiver, state):
    created = api.create_endpoint(receiver.url, ["*"])
    endpoint = created.body
    expect(ENDPOINT_ID.match(endpoint.get("id") or ""), f"id is {endpoint.get('id')!r}")
    expect(SECRET.match(endpoint.get("secret") or ""), f"secret is {endpoint.get('secret')!r}")
    expect(
        created.headers.get("location") == f"/v1/webhook-endpoints/{endpoint['id']}",
        f"Location is {created.headers.get('location')!r}",
    )
    expect(endpoint["event_types"] == ["*"], f"event_types is {endpoint['event_types']!r}")
    expect(endpoint["enabled"] is True and endpoint["disabled_reason"] is None, f"not enabled: {endpoint}")
    state.update(endpoint_id=endpoint["id"], secret=endpoint["secret"])
    read = api.endpoint(endpoint["id"]).body
    expect("secret" not in read, "a read of the endpoint shows its secret")
    expect(read["url"] == endpoint["url"], f"url reads {read['url']!r}, was {endpoint['url']!r}")
    ok(f"endpoint {endpoint['id']} for every event type at {receiver.url}; its secret is shown once")


def check_signed_deliveries(api, receiver, state):
    reader_id = unique("interop-hooks")
    grant = api.grant(reader_id, ["articles"])
    created = receiver.wait_for("grant.created", of_type("grant.created", reader_id=reader_id))[0]
    changed = receiver.wait_for(
        "reader.entitlements.changed", of_type("reader.entitlements.changed", reader_id=reader_id)
    )[0]
    for delivery in (created, changed):
        verify(state["secret"], delivery, delivery.describe())
        expect(len(signatures(delivery)) == 1, f"{delivery.describe()} carries {signatures(delivery)}")
    data = expect_envelope(created, "grant.created")
    expected = {
        "grant_id": grant["id"],
        "reader_id": reader_id,
        "entitlements": ["articles"],
        "expires_at": grant["expires_at"],
        "reason": "interop check",
    }
    expect(data == expected, f"grant.created data is {data}, expected {expected}")
    expect_entitlements_changed(changed, reader_id, [], ["articles"], 1)
    expect(created.webhook_id != changed.webhook_id, "two events share a webhook-id")
    state.update(reader_id=reader_id, grant_id=grant["id"], sample=changed)
    ok(f"grant.created and reader.entitlements.changed (sequence 1) for {reader_id} verify with the secret")


def check_forgeries(api, receiver, state):
    secret, sample = state["secret"], state["sample"]
    body, headers = sample.body, sample.headers
    # The untampered delivery must pass, or the rejections below would prove nothing.
    verify(secret, sample, "the genuine delivery")
    expect(b'"articles"' in body, f"the sample has no \"articles\" to change: {body!r}")
    other_secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    other_id = "msg_" + secrets.token_hex(16)
    forgeries = [
        ("a body with `articles` changed", body.replace(b'"articles"', b'"articlez"'), headers, secret),
        ("a body with a space added", body + b" ", headers, secret),
        ("another endpoint's secret", body, headers, other_secret),
        ("another webhook-id", body, {**headers, "webhook-id": other_id}, secret),
        (
            "another webhook-timestamp",
            body,
            {**headers, "webhook-timestamp": str(int(headers["webhook-timestamp"]) - 1)},
            secret,
        ),
        ("no webhook-signature", body, {k: v for k, v in headers.items() if k != "webhook-signature"}, secret),
    ]
    for what, forged_body, forged_headers, key in forgeries:
        ok(f"rejected {what} ({expect_rejected(key, forged_body, forged_headers, what)})")


def check_rotation(api, receiver, state):
    old = state["secret"]
    rotated = api.rotate(state["endpoint_id"])
    new = rotated.get("secret") or ""
    expect(rotated.get("id") == state["endpoint_id"], f"the rotation answered id {rotated.get('id')!r}")
    expect(SECRET.match(new), f"the new secret is {new!r}")
    expect(new != old, "the rotation kept the secret")
    overlap_end = parse_instant(rotated["previous_secret_expires_at"])
    expect(
        overlap_end > datetime.now(timezone.utc),
        f"previous_secret_expires_at {rotated['previous_secret_expires_at']} is not in the future",
    )
    reader_id, grant_id = state["reader_id"], state["grant_id"]
    api.revoke(reader_id, grant_id)
    revoked = receiver.wait_for("grant.revoked", of_type("grant.revoked", grant_id=grant_id))[0]
    first_change = state["sample"].webhook_id
    changed = receiver.wait_for(
        "the reader's second reader.entitlements.changed",
        lambda event: of_type("reader.entitlements.changed", reader_id=reader_id)(event) and event["id"] != first_change,
    )[0]
    data = expect_envelope(revoked, "grant.revoked")
    expect(data == {"grant_id": grant_id, "reader_id": reader_id}, f"grant.revoked data is {data}")
    expect_entitlements_changed(changed, reader_id, ["articles"], [], 2)
    for delivery in (revoked, changed):
        what = delivery.describe()
        parts = signatures(delivery)
        expect(len(parts) == 2, f"{what} during the overlap carries {len(parts)} signature(s), not 2")
        verify(old, delivery, f"{what}, with the old secret")
        verify(new, delivery, f"{what}, with the new secret")
        first_only = Delivery({**delivery.headers, "webhook-signature": parts[0]}, delivery.body, 200)
        verify(new, first_only, f"{what}: its first signature, with the new secret")
        expect_rejected(old, first_only.body, first_only.headers, f"{what}: its first signature, with the old secret")
    state.update(secret=new, old_secret=old)
    ok(
        f"after the rotation grant.revoked and reader.entitlements.changed (sequence 2) carry two "
        f"signatures and verify with the old secret and with the new one, until {rotated['previous_secret_expires_at']}"
    )


def check_retry_after_500(api, receiver, state):
    reader_id = unique("interop-hooks-retry")
    receiver.fail_first = of_type("grant.created", reader_id=reader_id)
    api.grant(reader_id, ["articles"])
    first, second = receiver.wait_for(
        "grant.created, answered 500 then retried", of_type("grant.created", reader_id=reader_id), count=2
    )
    expect(first.answered == 500 and second.answered == 200, f"answered {first.answered}, then {second.answered}")
    expect(
        first.webhook_id == second.webhook_id,
        f"the retry has webhook-id {second.webhook_id!r}, the first attempt {first.webhook_id!r}",
    )
    expect(first.event == second.event, f"the retry's event {second.event} differs from {first.event}")
    expect(
        int(second.headers["webhook-timestamp"]) >= int(first.headers["webhook-timestamp"]),
        "the retry's webhook-timestamp is before the first attempt's",
    )
    for delivery in (first, second):
        verify(state["secret"], delivery, f"{delivery.describe()}")
    state["retried_event_id"] = first.webhook_id
    ok(f"a delivery answered 500 came again with the same webhook-id {first.webhook_id}, and verifies")


def check_deliveries_listed(api, receiver, state):
    endpoint_id = state["endpoint_id"]
    received = {d.webhook_id: d.event["type"] for d in receiver.all() if d.answered == 200 and d.event}

    def all_delivered():
        listed = api.deliveries(endpoint_id)
        by_event = {d["event_id"]: d for d in listed}
        missing = [event_id for event_id in received if event_id not in by_event]
        expect(not missing, f"events received but not listed among the endpoint's deliveries: {missing}")
        return listed if all(by_event[event_id]["status"] == "delivered" for event_id in received) else None

    listed = poll("the deliveries the receiver answered 200 to are listed `delivered`", all_delivered)
    for delivery in listed:
        expect(DELIVERY_ID.match(delivery["id"]), f"a delivery's id is {delivery['id']!r}")
        if delivery["event_id"] in received:
            expect(
                delivery["event_type"] == received[delivery["event_id"]],
                f"delivery {delivery['id']} has event_type {delivery['event_type']!r}",
            )
            expect(delivery["delivered_at"] is not None, f"delivery {delivery['id']} has no delivered_at")
            expect(delivery["last_status_code"] == 200, f"delivery {delivery['id']}: {delivery}")
    retried = next(d for d in listed if d["event_id"] == state["retried_event_id"])
    expect(retried["attempts"] == 2, f"the delivery answered 500 once lists {retried['attempts']} attempts")
    delivered = api.deliveries(endpoint_id, status="delivered")
    expect(all(d["status"] == "delivered" for d in delivered), "status=delivered lists other states")
    expect(
        {d["event_id"] for d in delivered} >= set(received),
        "status=delivered leaves out deliveries listed delivered",
    )
    changes = {
        d.webhook_id
        for d in receiver.all()
        if d.event and of_type("reader.entitlements.changed", reader_id=state["reader_id"])(d.event)
    }
    expect(len(changes) == 2, f"the reader's two changes came as {len(changes)} events: {sorted(changes)}")
    state["listed"] = listed
    ok(f"{len(received)} events listed `delivered`, the one answered 500 after 2 attempts; one event per change")


def check_retry_and_replay(api, receiver, state):
    endpoint_id = state["endpoint_id"]
    created = next(
        d for d in receiver.all() if d.event and of_type("grant.created", reader_id=state["reader_id"])(d.event)
    )
    delivery = next(d for d in state["listed"] if d["event_id"] == created.webhook_id)
    sent_before = sum(1 for d in receiver.all() if d.webhook_id == created.webhook_id)
    retried = api.retry(endpoint_id, delivery["id"])
    expect(retried["id"] == delivery["id"], f"the retry answered delivery {retried['id']}")
    expect(retried["status"] == "pending", f"a retried delivery is {retried['status']!r}, not pending")
    again = receiver.wait_for(
        "the retried grant.created", lambda event: event.get("id") == created.webhook_id, count=sent_before + 1
    )[-1]
    verify(state["secret"], again, "the retried grant.created")
    expect(again.event == created.event, f"the retried event {again.event} differs from {created.event}")
    ok(f"an operator's retry of {delivery['id']} sent {created.webhook_id} again")

    # Every event the receiver got, by id; replayed, each must come again under the same id.
    events = {d.webhook_id: d.event for d in receiver.all() if d.event and d.answered == 200}
    start = min(parse_instant(event["timestamp"]) for event in events.values())
    end = max(parse_instant(event["timestamp"]) for event in events.values()) + timedelta(seconds=1)
    time.sleep(max(0.0, end.timestamp() - time.time()))
    counts = {event_id: sum(1 for d in receiver.all() if d.webhook_id == event_id) for event_id in events}
    replay = api.replay(endpoint_id, start, end)
    expect(replay["endpoint_id"] == endpoint_id, f"the replay answered endpoint {replay['endpoint_id']}")
    expect(
        replay["scheduled"] >= len(events),
        f"the replay scheduled {replay['scheduled']} deliveries for at least {len(events)} events",
    )
    for event_id, event in events.items():
        replayed = receiver.wait_for(
            f"the replay of {event['type']} {event_id}",
            lambda e, event_id=event_id: e.get("id") == event_id,
            count=counts[event_id] + 1,
        )[-1]
        verify(state["secret"], replayed, f"the replayed {event['type']} {event_id}")
        expect(replayed.event == event, f"the replayed event {replayed.event} differs from {event}")
    ok(f"a replay of {rfc3339(start)} to {rfc3339(end)} sent all {len(events)} events again, each with its webhook-id")


def check_delete(api, receiver, state):
    endpoint_id = state.pop("endpoint_id")
    api.delete_endpoint(endpoint_id)
    api.endpoint(endpoint_id, expected=(404,))
    api.call("GET", f"/v1/webhook-endpoints/{endpoint_id}/deliveries", expected=(404,))
    ok(f"endpoint {endpoint_id} deleted; it and its deliveries read 404")


CHECKS = [
    check_endpoint,
    check_signed_deliveries,
    check_forgeries,
    check_rotation,
    check_retry_after_500,
    check_deliveries_listed,
    check_retry_and_replay,
    check_delete,
]


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        print("usage: verify_webhooks.py BASE_URL ADMIN_KEY", file=sys.stderr)
        return 2
    api = Api(argv[1], argv[2])
    state = {}  # what one check leaves for the next
    with Receiver() as receiver:
        try:
            for check in CHECKS:
                name = check.__name__.removeprefix("check_")
                try:
                    check(api, receiver, state)
                except CheckFailed as failure:
                    print(f"not ok - {name}: {failure}", flush=True)
                    return 1
                except Exception:
                    print(f"not ok - {name}: unexpected error", flush=True)
                    traceback.print_exc()
                    return 1
        finally:
            # An endpoint left behind would be retried against a receiver that is gone.
            if "endpoint_id" in state:
                try:
                    api.delete_endpoint(state["endpoint_id"])
                except Exception:
                    pass
    print("all webhook interop checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
