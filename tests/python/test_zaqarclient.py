"""Compatibility tests: drive a running Zaqar v2 server with the real
python-zaqarclient (4.7.0).

The server URL comes from the ``ZAQAR_URL`` environment variable (e.g.
``http://127.0.0.1:8888``).  The server must run unauthenticated (no
keystone): the client is configured for its ``noauth`` backend with an
explicit project id, which it sends as the ``X-Project-Id`` header.  Every
test works in its own freshly generated project, so tests never see each
other's queues and the suite can be re-run against the same server.

Run with ``tests/python/run.sh ZAQAR_URL``.
"""

import itertools
import os
import uuid

import pytest

from zaqarclient.queues.v2 import client as zaqar_client
from zaqarclient.queues.v2 import message as zaqar_message
from zaqarclient.transport import errors

# Upper bound for any paging loop, so that a server that keeps returning a
# `next` link on an empty page fails the test instead of hanging it.
MAX_ITEMS = 200


# --------------------------------------------------------------------------
# fixtures and helpers
# --------------------------------------------------------------------------

@pytest.fixture(scope="session")
def zaqar_url():
    url = os.environ.get("ZAQAR_URL", "").strip()
    if not url:
        pytest.fail(
            "ZAQAR_URL is not set: export ZAQAR_URL=http://HOST:PORT of the "
            "Zaqar server under test (or use tests/python/run.sh URL)",
            pytrace=False)
    return url.rstrip("/")


def make_client(url, project_id, client_uuid=None):
    """A v2 client in no-auth mode for `project_id`.

    With the ``noauth`` backend the client authenticates nothing and sends
    ``X-Project-Id: <os_project_id>`` and ``Client-ID: <client_uuid>`` on
    every request (``client_uuid`` defaults to a random dash-less UUID).
    """
    conf = {
        "auth_opts": {
            "backend": "noauth",
            "options": {"os_project_id": project_id},
        },
    }
    if client_uuid is not None:
        conf["client_uuid"] = client_uuid
    return zaqar_client.Client(url, version=2, conf=conf)


@pytest.fixture
def project_id():
    return "proj-" + uuid.uuid4().hex


@pytest.fixture
def cli(zaqar_url, project_id):
    return make_client(zaqar_url, project_id)


def new_queue(cli, name="q"):
    """Create queue `name` with PUT (force_create) and return it."""
    return cli.queue(name, force_create=True)


def ids_from_post(result, queue_name):
    """Message ids from the `resources` list of a POST messages response."""
    assert isinstance(result, dict), result
    resources = result["resources"]
    prefix = "/v2/queues/%s/messages/" % queue_name
    ids = []
    for href in resources:
        assert href.startswith(prefix), href
        mid = href[len(prefix):]
        assert mid and "/" not in mid and "?" not in mid, href
        ids.append(mid)
    return ids


def drain(iterator):
    """Collect every item of a client iterator, following `next` links
    (the client's stream() mode) until the server returns an empty page."""
    items = list(itertools.islice(iterator.stream(), MAX_ITEMS + 1))
    if len(items) > MAX_ITEMS:
        pytest.fail("paging did not terminate: still getting items after "
                    "%d; the `next` link does not advance past the marker"
                    % MAX_ITEMS, pytrace=False)
    return items


def queue_names(cli):
    """Names on the first page of the project's queue listing (default
    limit 10; every test project here has fewer queues than that)."""
    return [x.name for x in cli.queues()[0]]


def bodies(msgs):
    return [m.body for m in msgs]


def stats_of(queue):
    st = queue.stats
    assert set(st) == {"messages"}, st
    return st["messages"]


def unclaimed_message(queue, mid):
    """A client Message for `mid` whose href carries no claim id, i.e. what
    a worker that does not hold the claim would have."""
    return zaqar_message.Message(
        queue, ttl=None, age=None, body=None,
        href="/v2/queues/%s/messages/%s" % (queue.name, mid))


DEFAULT_META = {
    "_max_messages_post_size": 262144,
    "_default_message_ttl": 3600,
    "_default_message_delay": 0,
    "_dead_letter_queue": None,
    "_dead_letter_queue_messages_ttl": None,
    "_max_claim_count": None,
    "_enable_encrypt_messages": False,
}


# --------------------------------------------------------------------------
# service level
# --------------------------------------------------------------------------

def test_ping_and_homedoc(cli):
    assert cli.ping() is True
    home = cli.homedoc()
    resources = home["resources"]
    assert resources["rel/queue"]["href-template"] == "/v2/queues/{queue_name}"
    for rel in ("rel/queues", "rel/messages", "rel/post_claim",
                "rel/queue_stats", "rel/queue_purge"):
        assert rel in resources, rel


# --------------------------------------------------------------------------
# queues
# --------------------------------------------------------------------------

def test_create_queue_and_exists(cli):
    q = new_queue(cli, "created")
    assert q.name == "created"
    assert q.exists() is True
    # A second PUT of the same queue (204) is not an error.
    again = cli.queue("created", force_create=True)
    assert again.exists() is True
    assert queue_names(cli) == ["created"]
    # A fresh queue has the default metadata only.
    assert q.metadata(force_reload=True) == DEFAULT_META
    # ... and no messages.
    assert stats_of(q) == {"claimed": 0, "free": 0, "total": 0}


def test_queue_without_force_create_is_created_lazily_by_post(cli):
    # Queue(auto_create=True) without force_create sends nothing; the
    # first message POST creates the queue on the server.
    q = cli.queue("lazy")
    assert queue_names(cli) == []
    q.post({"body": "hello"})
    assert queue_names(cli) == ["lazy"]


def test_metadata_set_and_read_back(cli, zaqar_url, project_id):
    q = new_queue(cli, "meta")
    meta = {"owner": "team-a", "nested": {"a": [1, 2, {"b": None}]},
            "count": 3}
    # GET, then PATCH (json-patch) built by the client from the difference.
    result = q.metadata(new_meta=meta)
    expected = dict(DEFAULT_META)
    expected.update(meta)
    assert result == expected

    # Read back with a brand-new client object (no cache).
    other = make_client(zaqar_url, project_id).queue("meta",
                                                     auto_create=False)
    assert other.metadata(force_reload=True) == expected
    assert other.metadata_dict == expected

    # Second update: replace an existing key, remove another, add a new
    # one, change a reserved attribute.
    meta2 = {"owner": "team-b", "count": 3, "extra": True,
             "_default_message_ttl": 120}
    result2 = q.metadata(new_meta=meta2)
    expected2 = dict(DEFAULT_META)
    expected2.update(meta2)
    assert result2 == expected2
    assert "nested" not in result2
    assert q.metadata(force_reload=True) == expected2

    # The reserved attribute is in effect: a message without ttl gets it.
    mid = ids_from_post(q.post({"body": "ttl?"}), "meta")[0]
    assert q.message(mid).ttl == 120

    # Empty new metadata clears every custom key; reserved keys revert to
    # their defaults.
    assert q.metadata(new_meta={}) == DEFAULT_META
    assert q.metadata(force_reload=True) == DEFAULT_META


def test_delete_queue(cli):
    q = new_queue(cli, "doomed")
    keep = new_queue(cli, "kept")
    q.metadata(new_meta={"x": 1})
    q.post([{"body": i} for i in range(3)])
    keep.post({"body": "stay"})
    q.delete()

    assert queue_names(cli) == ["kept"]
    assert stats_of(q) == {"claimed": 0, "free": 0, "total": 0}
    assert list(q.messages(echo=True)) == []
    # GET of a missing queue answers 200 with the defaults.
    assert q.metadata(force_reload=True) == DEFAULT_META
    # Deleting again is fine (204).
    q.delete()
    # Re-created queue starts empty, without the old metadata.
    q2 = new_queue(cli, "doomed")
    assert q2.metadata(force_reload=True) == DEFAULT_META
    assert list(q2.messages(echo=True)) == []
    # The other queue is untouched.
    assert bodies(keep.messages(echo=True)) == ["stay"]


def test_list_queues_paging(cli):
    names = ["q-%d" % i for i in (5, 1, 6, 0, 3, 2, 4)]
    for name in names:
        new_queue(cli, name)
    cli.queue("q-3", auto_create=False).metadata(
        new_meta={"color": "red"})

    it, count = cli.queues(limit=2)
    assert count is None
    listed = drain(it)
    got = [x.name for x in listed]
    assert got == sorted(names)
    for x in listed:
        assert x.href == "/v2/queues/%s" % x.name

    # The first page alone holds `limit` queues.
    first_page = list(cli.queues(limit=2)[0])
    assert [x.name for x in first_page] == sorted(names)[:2]

    # with_count reports the total number of queues of the project.
    it, count = cli.queues(limit=2, with_count=True)
    assert count == 7
    assert [x.name for x in drain(it)] == sorted(names)


def test_list_queues_paging_marker_is_first_item(cli):
    # Reference Zaqar 23.0.1 with the Redis store fails this: a marker equal
    # to the first queue is not skipped, so the client's stream() never ends
    # (contract §1.9, §9 item 38; recommended behaviour tested here).
    # Streaming a listing whose page ends on the first queue of the project
    # (one queue; or limit=1) must still advance: the page after marker X
    # starts strictly after X and the empty page ends the iteration.
    new_queue(cli, "only")
    assert [x.name for x in drain(cli.queues()[0])] == ["only"]
    for name in ("second", "third"):
        new_queue(cli, name)
    got = [x.name for x in drain(cli.queues(limit=1)[0])]
    assert got == ["only", "second", "third"]


def test_list_queues_detailed(cli):
    for name in ("d-a", "d-b", "d-c"):
        new_queue(cli, name)
    cli.queue("d-b", auto_create=False).metadata(
        new_meta={"color": "red", "_default_message_ttl": 600})

    listed = drain(cli.queues(limit=2, detailed=True)[0])
    assert [x.name for x in listed] == ["d-a", "d-b", "d-c"]
    by_name = {x.name: x for x in listed}
    # The listing's metadata is cached in the Queue objects: metadata()
    # returns it without another request.
    expected_b = dict(DEFAULT_META)
    expected_b.update({"color": "red", "_default_message_ttl": 600})
    assert by_name["d-b"].metadata() == expected_b
    assert by_name["d-a"].metadata() == DEFAULT_META
    assert by_name["d-c"].metadata() == DEFAULT_META

    # Without detailed there is no metadata in the listing.
    plain = drain(cli.queues(limit=2)[0])
    assert all(x._metadata is None for x in plain)


def test_projects_are_isolated(zaqar_url):
    p1 = make_client(zaqar_url, "proj-" + uuid.uuid4().hex)
    p2 = make_client(zaqar_url, "proj-" + uuid.uuid4().hex)
    q1 = new_queue(p1, "same-name")
    q1.post({"body": "p1 only"})
    q2 = p2.queue("same-name", auto_create=False)
    assert queue_names(p2) == []
    assert list(q2.messages(echo=True)) == []
    assert stats_of(q2)["total"] == 0
    assert bodies(q1.messages(echo=True)) == ["p1 only"]


# --------------------------------------------------------------------------
# messages
# --------------------------------------------------------------------------

def test_post_single_and_batch(cli):
    q = new_queue(cli, "posting")
    res = q.post({"body": {"n": 0}, "ttl": 300})
    ids_single = ids_from_post(res, "posting")
    assert len(ids_single) == 1

    res = q.post([{"body": {"n": 1}}, {"body": {"n": 2}, "ttl": 120},
                  {"body": {"n": 3}}])
    ids_batch = ids_from_post(res, "posting")
    assert len(ids_batch) == 3
    all_ids = ids_single + ids_batch
    assert len(set(all_ids)) == 4

    msgs = drain(q.messages(echo=True))
    assert [m.id for m in msgs] == all_ids
    assert bodies(msgs) == [{"n": i} for i in range(4)]
    assert [m.ttl for m in msgs] == [300, 3600, 120, 3600]
    for m in msgs:
        assert m.href == "/v2/queues/posting/messages/%s" % m.id
        assert isinstance(m.age, int) and m.age >= 0
        assert m.claim_id is None
    assert stats_of(q)["total"] == 4


def test_message_body_types_round_trip(cli):
    q = new_queue(cli, "bodies")
    values = [
        {"event": "order.created", "nested": {"list": [1, "two", None]}},
        "plain string payload",
        "",
        "unicode \u00e9\u4e2d\U0001F600",
        42,
        -7,
        0,
        2 ** 62,
        1.5,
        [1, 2, 3],
        [],
        {},
        None,
        True,
        False,
    ]
    ids = ids_from_post(q.post([{"body": v} for v in values]), "bodies")
    assert len(ids) == len(values)

    # Single GET of every message.
    for mid, v in zip(ids, values):
        got = q.message(mid).body
        assert got == v and type(got) is type(v), (v, got)

    # Listing (in posting order, across pages).
    listed = drain(q.messages(echo=True, limit=4))
    assert [m.id for m in listed] == ids
    for m, v in zip(listed, values):
        assert m.body == v and type(m.body) is type(v), (v, m.body)

    # A single message posted on its own (not in a list).
    mid = ids_from_post(q.post({"body": None}), "bodies")[0]
    assert q.message(mid).body is None


def test_list_messages_paging(cli):
    q = new_queue(cli, "paging")
    ids = ids_from_post(q.post([{"body": i} for i in range(7)]), "paging")

    # Without stream() the iterator yields only the first page.
    first = list(q.messages(limit=2, echo=True))
    assert bodies(first) == [0, 1]

    # stream() follows `next` links until an empty page.
    msgs = drain(q.messages(limit=2, echo=True))
    assert [m.id for m in msgs] == ids
    assert bodies(msgs) == list(range(7))

    # Walk the pages by hand with the client's `follow`, as the iterator
    # does: 3 + 3 + 1, then an empty page with no links.
    page = cli.follow("/v2/queues/paging/messages?limit=3&echo=true")
    sizes = []
    for _ in range(10):
        if not page["messages"]:
            assert page["links"] == []
            break
        sizes.append(len(page["messages"]))
        nexts = [link for link in page["links"] if link["rel"] == "next"]
        assert len(nexts) == 1
        href = nexts[0]["href"]
        assert href.startswith("/v2/queues/paging/messages?"), href
        page = cli.follow(href)
    else:
        pytest.fail("message paging did not reach an empty page")
    assert sizes == [3, 3, 1]


def test_list_messages_paging_limit_one(cli):
    # Reference Redis fails this: a marker equal to the first message of the
    # queue is repeated (contract §1.9, §2.3.2, §9 item 38).
    # Paging with limit=1: the first `next` marker is the queue's first
    # message, the next page must start after it.
    q = new_queue(cli, "paging1")
    ids = ids_from_post(q.post([{"body": i} for i in range(3)]), "paging1")
    assert [m.id for m in drain(q.messages(limit=1, echo=True))] == ids
    # A queue holding a single message, streamed with the default limit.
    q1 = new_queue(cli, "single")
    mid = ids_from_post(q1.post({"body": "one"}), "single")[0]
    assert [m.id for m in drain(q1.messages(echo=True))] == [mid]


def test_list_messages_echo(zaqar_url, project_id):
    producer = make_client(zaqar_url, project_id)
    consumer = make_client(zaqar_url, project_id)
    q = new_queue(producer, "echo")
    ids = ids_from_post(q.post([{"body": i} for i in range(3)]), "echo")

    # The producer does not see its own messages unless echo=True.
    assert list(q.messages()) == []
    assert list(q.messages(echo=False)) == []
    assert [m.id for m in q.messages(echo=True)] == ids
    # Another client (different Client-ID) sees them without echo.
    cq = consumer.queue("echo", auto_create=False)
    assert [m.id for m in drain(cq.messages())] == ids
    # Client-ID identity is the UUID: the dashed spelling of the
    # producer's (dash-less) id is the same client.
    dashed = str(uuid.UUID(producer.client_uuid))
    same = make_client(zaqar_url, project_id, client_uuid=dashed)
    assert list(same.queue("echo", auto_create=False).messages()) == []


def test_list_messages_include_claimed(zaqar_url, project_id):
    # Reference Redis fails this: include_claimed=true without a marker
    # answers 503 "Messages could not be listed." (contract §2.3.2, §9 item
    # 39; recommended behaviour tested here).
    worker = make_client(zaqar_url, project_id)
    other = make_client(zaqar_url, project_id)
    q = new_queue(worker, "inclaimed")
    ids = ids_from_post(q.post([{"body": i} for i in range(4)]), "inclaimed")
    claim = q.claim(ttl=300, grace=60, limit=2)
    assert [m.id for m in claim] == ids[:2]

    # Without include_claimed only the unclaimed messages are listed.
    assert [m.id for m in q.messages(echo=True)] == ids[2:]
    # With it, all of them, in order; claimed ones carry the claim id.
    msgs = drain(q.messages(include_claimed=True, echo=True))
    assert [m.id for m in msgs] == ids
    assert [m.claim_id for m in msgs] == [claim.id, claim.id, None, None]
    # echo=False hides the caller's own messages, claimed or not.
    assert list(q.messages(include_claimed=True)) == []
    # Another client sees everything.
    oq = other.queue("inclaimed", auto_create=False)
    assert [m.id for m in drain(oq.messages(include_claimed=True))] == ids


def test_delete_messages_by_ids(cli):
    q = new_queue(cli, "bulkdel")
    ids = ids_from_post(q.post([{"body": i} for i in range(5)]), "bulkdel")
    claim = q.claim(ttl=300, grace=60, limit=1)
    assert [m.id for m in claim] == [ids[0]]

    # Bulk delete ignores claims; unknown ids are ignored.
    q.delete_messages(ids[0], ids[1], "5f1e0c2a9d3e4b0001a1b2c3")
    for mid in ids[:2]:
        with pytest.raises(errors.ResourceNotFound):
            q.message(mid)
    assert [m.id for m in q.messages(echo=True)] == ids[2:]
    st = stats_of(q)
    assert (st["claimed"], st["free"], st["total"]) == (0, 3, 3)
    # Deleting ids that are already gone is fine (204).
    q.delete_messages(ids[0])


def test_get_message_by_id(cli):
    q = new_queue(cli, "getone")
    ids = ids_from_post(q.post([{"body": {"k": "v"}, "ttl": 600},
                                {"body": "second"}]), "getone")
    m = q.message(ids[0])
    assert m.id == ids[0]
    assert m.body == {"k": "v"}
    assert m.ttl == 600
    assert m.age >= 0
    assert m.href == "/v2/queues/getone/messages/%s" % ids[0]
    assert q.message(ids[1]).body == "second"

    with pytest.raises(errors.ResourceNotFound):
        q.message("5f1e0c2a9d3e4b0001a1b2c3")
    with pytest.raises(errors.ResourceNotFound):
        q.message("not-an-id")
    # Nonexistent queue -> 404 too.
    with pytest.raises(errors.ResourceNotFound):
        cli.queue("nothere", auto_create=False).message(ids[0])


def test_get_messages_by_ids(cli):
    q = new_queue(cli, "getmany")
    ids = ids_from_post(q.post([{"body": i} for i in range(5)]), "getmany")

    got = list(q.messages(ids[0], ids[2], ids[4]))
    assert {m.id: m.body for m in got} == {ids[0]: 0, ids[2]: 2, ids[4]: 4}
    for m in got:
        assert m.href == "/v2/queues/getmany/messages/%s" % m.id

    # Unknown ids are skipped...
    got = list(q.messages(ids[1], "5f1e0c2a9d3e4b0001a1b2c3"))
    assert [m.id for m in got] == [ids[1]]
    # ... and if none is found the answer is 404.
    with pytest.raises(errors.ResourceNotFound):
        list(q.messages("5f1e0c2a9d3e4b0001a1b2c3"))

    # Claimed messages are returned too (with the claim in the href).
    claim = q.claim(ttl=300, grace=60, limit=1)
    assert claim.id
    got = list(q.messages(ids[0], ids[1]))
    by_id = {m.id: m for m in got}
    assert set(by_id) == {ids[0], ids[1]}
    assert by_id[ids[0]].claim_id == claim.id
    assert by_id[ids[1]].claim_id is None


# --------------------------------------------------------------------------
# claims
# --------------------------------------------------------------------------

def test_claim_create_get_update(cli):
    q = new_queue(cli, "claims")
    ids = ids_from_post(q.post([{"body": i} for i in range(4)]), "claims")

    claim = q.claim(ttl=120, grace=60, limit=2)
    assert claim.id
    claimed = list(claim)
    assert [m.id for m in claimed] == ids[:2]
    assert bodies(claimed) == [0, 1]
    for m in claimed:
        assert m.href == ("/v2/queues/claims/messages/%s?claim_id=%s"
                          % (m.id, claim.id))
        assert m.claim_id == claim.id

    # Claimed messages are hidden from a normal listing.
    assert [m.id for m in q.messages(echo=True)] == ids[2:]

    # Read the claim back.
    again = q.claim(id=claim.id)
    assert again.ttl == 120
    assert again.age >= 0
    assert sorted(m.id for m in again) == sorted(ids[:2])

    # Update (renew) it.
    claim.update(ttl=300, grace=90)
    fresh = q.claim(id=claim.id)
    assert fresh.ttl == 300
    assert fresh.age >= 0
    assert sorted(m.id for m in fresh) == sorted(ids[:2])

    # A second claim takes the remaining messages only.
    claim2 = q.claim(ttl=60, grace=60, limit=10)
    assert claim2.id and claim2.id != claim.id
    assert [m.id for m in claim2] == ids[2:]

    # Nothing left to claim: 204, the client gives a claim without id.
    empty = q.claim(ttl=60, grace=60, limit=5)
    assert empty.id is None
    assert list(empty) == []

    # Claim without a limit uses the server default (10).
    q2 = new_queue(cli, "claims-default")
    q2.post([{"body": i} for i in range(12)])
    assert len(list(q2.claim(ttl=60, grace=60))) == 10

    # Unknown claim -> 404.
    with pytest.raises(errors.ResourceNotFound):
        q.claim(id="5f1e0c2a9d3e4b0001a1b2c3").ttl


def test_claim_skips_messages_of_other_claims(cli):
    # Reference Redis fails this: after the first claimable message a claim
    # takes the following messages unchecked, including those of another
    # active claim (contract §4.4, §9 item 40; this is the §4.4 example).
    q = new_queue(cli, "claimskip")
    ids = ids_from_post(q.post([{"body": i} for i in range(5)]), "claimskip")
    a = q.claim(ttl=300, grace=60, limit=2)
    b = q.claim(ttl=300, grace=60, limit=2)
    assert [m.id for m in a] == ids[0:2]
    assert [m.id for m in b] == ids[2:4]
    a.delete()
    # A new claim takes A's released messages and the free one, never B's.
    c = q.claim(ttl=300, grace=60, limit=5)
    assert [m.id for m in c] == [ids[0], ids[1], ids[4]]
    assert sorted(m.id for m in q.claim(id=b.id)) == sorted(ids[2:4])
    st = stats_of(q)
    assert (st["claimed"], st["free"], st["total"]) == (5, 0, 5)
    # Pop does not take claimed messages either.
    assert list(q.pop(5)) == []


def test_claim_extends_short_message_ttl(cli):
    q = new_queue(cli, "claimttl")
    mid = ids_from_post(q.post({"body": "short", "ttl": 120}), "claimttl")[0]
    claim = q.claim(ttl=300, grace=60, limit=1)
    assert [m.id for m in claim] == [mid]
    # The message would expire before the claim: ttl = claim ttl + grace.
    assert q.message(mid).ttl == 360
    claim.update(ttl=600, grace=120)
    assert q.message(mid).ttl == 720


def test_delete_claimed_message(cli):
    q = new_queue(cli, "delclaimed")
    ids = ids_from_post(q.post([{"body": i} for i in range(3)]),
                        "delclaimed")
    claim = q.claim(ttl=300, grace=60, limit=2)
    claimed = list(claim)
    assert [m.id for m in claimed] == ids[:2]

    # Without the claim id: 403, the message survives.
    with pytest.raises(errors.ForbiddenError):
        unclaimed_message(q, ids[0]).delete()
    assert q.message(ids[0]).id == ids[0]

    # With the claim id (taken from the href by the client): deleted.
    claimed[0].delete()
    with pytest.raises(errors.ResourceNotFound):
        q.message(ids[0])
    # The claim no longer holds it.
    assert [m.id for m in q.claim(id=claim.id)] == [ids[1]]

    # A message fetched by id carries the claim in its href as well.
    fetched = q.message(ids[1])
    assert fetched.claim_id == claim.id
    fetched.delete()
    with pytest.raises(errors.ResourceNotFound):
        q.message(ids[1])

    # The unclaimed message can be deleted without a claim.
    unclaimed_message(q, ids[2]).delete()
    with pytest.raises(errors.ResourceNotFound):
        q.message(ids[2])
    # Deleting it again is idempotent.
    unclaimed_message(q, ids[2]).delete()
    assert stats_of(q)["total"] == 0


def test_release_claim(cli):
    q = new_queue(cli, "release")
    ids = ids_from_post(q.post([{"body": i} for i in range(3)]), "release")
    claim = q.claim(ttl=300, grace=60, limit=2)
    claimed = list(claim)
    assert [m.id for m in claimed] == ids[:2]
    assert [m.id for m in q.messages(echo=True)] == ids[2:]

    claim.delete()

    # The messages are visible (and claimable) again.
    assert [m.id for m in q.messages(echo=True)] == ids
    assert stats_of(q)["claimed"] == 0
    # The claim is gone.
    with pytest.raises(errors.ResourceNotFound):
        q.claim(id=claim.id).ttl
    with pytest.raises(errors.ResourceNotFound):
        claim.update(ttl=120, grace=60)
    # Deleting a message with the released claim's id: 400, message kept.
    with pytest.raises(errors.MalformedRequest):
        claimed[0].delete()
    assert q.message(ids[0]).body == 0
    # Releasing again is fine (204).
    claim.delete()
    # They can be claimed again.
    again = q.claim(ttl=60, grace=60, limit=10)
    assert [m.id for m in again] == ids


# --------------------------------------------------------------------------
# pop, stats, purge
# --------------------------------------------------------------------------

def test_pop(cli):
    q = new_queue(cli, "pop")
    ids = ids_from_post(q.post([{"body": i} for i in range(5)]), "pop")

    popped = list(q.pop(2))
    assert [m.id for m in popped] == ids[:2]
    assert bodies(popped) == [0, 1]
    for m in popped:
        assert m.href is None
        assert m.claim_count == 0
        assert m.ttl == 3600
    for mid in ids[:2]:
        with pytest.raises(errors.ResourceNotFound):
            q.message(mid)
    assert [m.id for m in q.messages(echo=True)] == ids[2:]

    # Claimed messages are not popped.
    claim = q.claim(ttl=300, grace=60, limit=1)
    assert [m.id for m in claim] == [ids[2]]
    popped = list(q.pop(10))
    assert [m.id for m in popped] == ids[3:]
    assert q.message(ids[2]).body == 2

    # Nothing left to pop.
    assert list(q.pop(1)) == []
    # Pop on a queue that does not exist: empty too.
    assert list(cli.queue("never", auto_create=False).pop(3)) == []


def test_stats(cli):
    q = new_queue(cli, "stats")
    assert stats_of(q) == {"claimed": 0, "free": 0, "total": 0}
    # Stats of a queue that does not exist: zeros.
    assert stats_of(cli.queue("nothere", auto_create=False)) == {
        "claimed": 0, "free": 0, "total": 0}

    ids = ids_from_post(q.post([{"body": i} for i in range(5)]), "stats")
    st = stats_of(q)
    assert (st["claimed"], st["free"], st["total"]) == (0, 5, 5)
    assert st["oldest"]["href"] == "/v2/queues/stats/messages/%s" % ids[0]
    assert st["newest"]["href"] == "/v2/queues/stats/messages/%s" % ids[-1]
    for key in ("oldest", "newest"):
        assert {"href", "age", "created"} <= set(st[key])
        assert st[key]["age"] >= 0
        created = st[key]["created"]
        assert len(created) == 20 and created.endswith("Z"), created

    claim = q.claim(ttl=300, grace=60, limit=2)
    claimed = list(claim)
    st = stats_of(q)
    assert (st["claimed"], st["free"], st["total"]) == (2, 3, 5)
    # The oldest message is the claimed one: claimed messages count.
    assert st["oldest"]["href"] == "/v2/queues/stats/messages/%s" % ids[0]

    claim2 = q.claim(ttl=300, grace=60, limit=1)
    assert [m.id for m in claim2] == [ids[2]]
    st = stats_of(q)
    assert (st["claimed"], st["free"], st["total"]) == (3, 2, 5)

    # Deleting a claimed message with its claim.
    claimed[1].delete()
    st = stats_of(q)
    assert (st["claimed"], st["free"], st["total"]) == (2, 2, 4)

    # Releasing a claim returns its messages to "free".
    claim.delete()
    st = stats_of(q)
    assert (st["claimed"], st["free"], st["total"]) == (1, 3, 4)

    # Popping removes free messages (the oldest one here).
    assert [m.id for m in q.pop(1)] == [ids[0]]
    st = stats_of(q)
    assert (st["claimed"], st["free"], st["total"]) == (1, 2, 3)


def test_purge(cli):
    q = new_queue(cli, "purge")
    q.post([{"body": i} for i in range(5)])
    q.purge()
    assert list(q.messages(echo=True)) == []
    assert stats_of(q) == {"claimed": 0, "free": 0, "total": 0}
    # The queue itself survives a purge.
    assert queue_names(cli) == ["purge"]
    # Purging an empty queue is fine.
    q.purge()


def test_purge_resource_types(cli):
    q = new_queue(cli, "purge-types")
    ids = ids_from_post(q.post([{"body": i} for i in range(3)]),
                        "purge-types")
    # Purging only subscriptions leaves the messages alone.
    q.purge(resource_types=["subscriptions"])
    assert [m.id for m in q.messages(echo=True)] == ids
    # Purging messages empties the queue.
    q.purge(resource_types=["messages"])
    assert list(q.messages(echo=True)) == []
    assert stats_of(q)["total"] == 0
    # Both types at once is accepted as well.
    q.post({"body": "again"})
    q.purge(resource_types=["messages", "subscriptions"])
    assert list(q.messages(echo=True)) == []
    # An unknown resource type is rejected with 400.
    with pytest.raises(errors.MalformedRequest):
        q.purge(resource_types=["queues"])


def test_purge_subscriptions(cli):
    q = new_queue(cli, "purge-subs")
    ids = ids_from_post(q.post([{"body": i} for i in range(2)]),
                        "purge-subs")
    # A webhook subscription, created after the messages were posted so
    # that nothing is ever delivered to it.
    sub = cli.subscription("purge-subs", subscriber="http://127.0.0.1:9/x",
                           ttl=3600)
    assert sub.id
    assert sub.subscriber == "http://127.0.0.1:9/x"
    assert sub.ttl == 3600
    subs = drain(cli.subscriptions("purge-subs"))
    assert [s.id for s in subs] == [sub.id]
    assert subs[0].subscriber == "http://127.0.0.1:9/x"

    q.purge(resource_types=["subscriptions"])
    assert drain(cli.subscriptions("purge-subs")) == []
    assert [m.id for m in q.messages(echo=True)] == ids

    # A plain purge() removes subscriptions as well as messages.
    cli.subscription("purge-subs", subscriber="http://127.0.0.1:9/y",
                     ttl=3600)
    assert len(drain(cli.subscriptions("purge-subs"))) == 1
    q.purge()
    assert drain(cli.subscriptions("purge-subs")) == []
    assert list(q.messages(echo=True)) == []
