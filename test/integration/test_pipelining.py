# SPDX-License-Identifier: Apache-2.0
"""HTTP/1.1 pipelining on the push API: requests of a location that answers with respond() alone
(ProtocolConfig::concurrentRequests) run side by side, answers leave in request order, and a
request for another location waits until every answer before it is written."""
import asyncio
import json

from conftest import API_KEY, make_token
from httputil import RawHttp, request
from wsutil import connect, run

AUTH = {"Authorization": "Bearer " + API_KEY}
JSON = {"Content-Type": "application/json", **AUTH}


def push(users, data):
    return request("POST", "/v1/push", JSON, json.dumps({"to": {"users": users}, "data": data}).encode())


def test_pipelined_pushes_answered_in_order_around_other_locations(gateway):
    users = [f"pipe{i}" for i in range(8)]

    async def main():
        # Eight online users: with two workers, pushes complete on both, in any order.
        clients = [await connect(gateway.ws_url(token=make_token(u))) for u in users]
        reqs = [push([users[i], f"off{i}"], f"m{i}") for i in range(4)]
        reqs.append(request("GET", "/ws", {}))                       # the WebSocket location:
        reqs += [push([users[i], f"off{i}"], f"m{i}") for i in range(4, 8)]  # one at a time
        reqs.append(request("GET", "/elsewhere", {}))                # no location: the core's 404
        reqs.append(request("GET", "/v1/users/" + users[5], {**AUTH, "Connection": "close"}))
        loop = asyncio.get_running_loop()

        def exchange():
            with RawHttp(gateway.port) as c:
                c.send(b"".join(reqs))
                got = [c.read_response() for _ in reqs]
                return got, c.closed_within(5)

        got, closed = await loop.run_in_executor(None, exchange)
        received = [await asyncio.wait_for(ws.recv(), 5) for ws in clients]
        for ws in clients:
            await ws.close()
        return got, closed, received

    got, closed, received = run(main())
    statuses = [r.status for r in got]
    assert statuses[:4] == [200] * 4 and statuses[5:9] == [200] * 4, statuses
    assert 400 <= statuses[4] < 500 and statuses[9] == 404, statuses
    pushes = got[:4] + got[5:9]
    # Each answer is its own request's: the offline user names it.
    assert [json.loads(r.body)["offline"] for r in pushes] == [[f"off{i}"] for i in range(8)]
    assert all(json.loads(r.body)["sessions"] == 1 for r in pushes)
    assert json.loads(got[10].body)["user"] == users[5]
    assert closed, "Connection: close on the last request closes the connection after it"
    assert received == [f"m{i}" for i in range(8)], received


def test_more_pipelined_requests_than_run_at_once_all_answered_in_order(gateway):
    # 200 requests in one write: more than the 32 a connection runs at once, so reading stops
    # and resumes as answers leave; every answer still comes, in order.
    n = 200
    reqs = [push([f"nobody{i}"], "x") for i in range(n)]
    with RawHttp(gateway.port, timeout=10) as c:
        c.send(b"".join(reqs))
        got = [c.read_response() for _ in range(n)]
        # The connection stays usable afterwards.
        c.send(request("GET", "/v1/users/after", AUTH))
        after = c.read_response()
    assert [json.loads(r.body)["offline"] for r in got] == [[f"nobody{i}"] for i in range(n)]
    assert after.status == 200 and json.loads(after.body)["user"] == "after"


def test_pipelined_pushes_split_at_every_offset(gateway):
    reqs = [push([f"split{i}"], "x") for i in range(3)]
    data = b"".join(reqs)
    for cut in range(1, len(data), 11):
        with RawHttp(gateway.port) as c:
            c.send(data[:cut])
            c.send(data[cut:])
            got = [c.read_response() for _ in reqs]
        assert [json.loads(r.body)["offline"] for r in got] == [[f"split{i}"] for i in range(3)]
