"""Compatibility tests for the admin API: pools and flavors through the
real python-zaqarclient (4.7.0), against a pooled deployment.

The server at ``ZAQAR_URL`` must run in admin mode with the catalog, and
grant the admin role to requests without ``X-Roles`` (the client sends no
roles in no-auth mode): ``ZAQAR_API__ADMIN_MODE=true`` and
``ZAQAR_API__DEFAULT_ROLES=[admin]``. Pools created here have weight 0 and
a flavor tag, so they never receive other tests' queues.
"""

import os
import uuid

import pytest

from zaqarclient.queues.v2 import client as zaqar_client
from zaqarclient.transport import errors


@pytest.fixture
def cli():
    url = os.environ.get("ZAQAR_URL", "").strip()
    if not url:
        pytest.fail("ZAQAR_URL is not set", pytrace=False)
    conf = {"auth_opts": {"backend": "noauth",
                          "options": {"os_project_id": "proj-" + uuid.uuid4().hex}}}
    return zaqar_client.Client(url.rstrip("/"), version=2, conf=conf)


def unique(prefix):
    return prefix + "-" + uuid.uuid4().hex[:12]


def test_pool_lifecycle(cli):
    name = unique("pool")
    flavor = unique("tag")
    uri = "redis://127.0.0.1:1/" + uuid.uuid4().hex[:6]
    pool = cli.pool(name, weight=0, uri=uri, flavor=flavor, options={"a": 1})
    got = pool.get()
    assert got["name"] == name
    assert got["uri"] == uri
    assert got["weight"] == 0
    assert got["flavor"] == flavor
    assert got["href"] == "/v2/pools/" + name

    names = [p.name for p in cli.pools(detailed=True, limit=20)]
    assert name in names

    pool.update({"weight": 0, "options": {"b": 2}})
    assert pool.get()["weight"] == 0

    with pytest.raises(errors.ConflictError):
        cli.pool(unique("other"), weight=0, uri=uri)

    with pytest.raises(errors.ForbiddenError):
        pool.delete()  # the only pool of its flavor tag
    pool.update({"flavor": ""})
    pool.delete()
    with pytest.raises(errors.ResourceNotFound):
        pool.get()


def test_flavor_lifecycle(cli):
    pool_name = unique("pool")
    uri = "redis://127.0.0.1:1/" + uuid.uuid4().hex[:6]
    cli.pool(pool_name, weight=0, uri=uri)
    flavor_name = unique("gold")
    flavor = cli.flavor(flavor_name, pool_list=[pool_name])
    got = flavor.get()
    assert got["name"] == flavor_name
    assert got["pool_list"] == [pool_name]
    assert got["capabilities"] == ["FIFO", "CLAIMS", "DURABILITY", "AOD",
                                   "HIGH_THROUGHPUT"]
    assert cli.pool(pool_name, auto_create=False).get()["flavor"] == flavor_name

    listed = [f.name for f in cli.flavors(detailed=True)]
    assert flavor_name in listed

    with pytest.raises(errors.MalformedRequest):
        cli.flavor(unique("bad"), pool_list=["no-such-pool"])

    flavor.update({"pool_list": [pool_name]})
    flavor.delete()
    with pytest.raises(errors.ResourceNotFound):
        flavor.get()
    assert cli.pool(pool_name, auto_create=False).get()["flavor"] is None
    cli.pool(pool_name, auto_create=False).delete()
