"""explorer/inputs/session_store.py: the server-side store that keeps an upload and its GT
across a browser reload: tokens, LRU bounds by entries and bytes, idle expiry, bad tokens
read as nothing, table rows made plain."""
import math
import threading

import numpy as np
import pytest

from explorer.inputs import session_store as keep_mod
from explorer.inputs.session_store import InputStore, KeptInputs, StoreLimits


def _entry(n_bytes: int = 100, name: str = "a.png", rows: int = 1) -> KeptInputs:
    row = {"label": "dog", "x1": 1.0, "y1": 2.0, "x2": 3.0, "y2": 4.0, "difficult": False, "crowd": False}
    return KeptInputs(name, b"x" * n_bytes, "digest", (row,) * rows, ("typed",))


def test_tokens_are_unguessable_and_url_safe():
    tokens = {keep_mod.new_token() for _ in range(1000)}
    assert len(tokens) == 1000  # 192 random bits: no repeats
    assert all(len(t) == 32 and keep_mod.is_token(t) for t in tokens)
    for bad in ("", "A" * 31, "A" * 33, "A" * 31 + "/", "../../etc/passwd", None, 12345, ["A" * 32]):
        assert not keep_mod.is_token(bad)


def test_put_get_replace_drop():
    store, token = InputStore(), keep_mod.new_token()
    assert store.get(token) is None
    assert store.put(token, _entry(name="a.png"))
    assert store.get(token).image_name == "a.png"
    assert store.put(token, _entry(name="b.png"))  # the user's next change replaces it
    assert store.get(token).image_name == "b.png" and len(store) == 1
    assert store.nbytes == _entry(name="b.png").nbytes()
    store.drop(token)
    assert store.get(token) is None and len(store) == 0 and store.nbytes == 0


@pytest.mark.parametrize("token", ["", "garbage", "A" * 5000, None, 7, "A" * 31 + "!"])
def test_malformed_tokens_read_as_nothing_and_cannot_be_stored(token):
    store = InputStore()
    assert store.get(token) is None
    store.drop(token)  # no error
    with pytest.raises(ValueError, match="not a session token"):
        store.put(token, _entry())


def test_least_recently_used_goes_first_by_entry_count():
    store = InputStore(StoreLimits(max_entries=3))
    tokens = [keep_mod.new_token() for _ in range(4)]
    for t in tokens[:3]:
        store.put(t, _entry())
    store.get(tokens[0])  # used again: now the newest
    store.put(tokens[3], _entry())
    assert [store.get(t) is not None for t in tokens] == [True, False, True, True]
    assert len(store) == 3


def test_bytes_bound_evicts_oldest_and_refuses_an_entry_over_the_budget():
    size = _entry(1000).nbytes()
    store = InputStore(StoreLimits(max_bytes=3 * size))
    tokens = [keep_mod.new_token() for _ in range(4)]
    for t in tokens:
        assert store.put(t, _entry(1000))
    assert store.get(tokens[0]) is None and all(store.get(t) for t in tokens[1:])
    assert store.nbytes == 3 * size <= store.limits.max_bytes
    big = keep_mod.new_token()
    assert not store.put(big, _entry(3 * size))  # alone over the budget: not kept, nothing evicted
    assert store.get(big) is None and len(store) == 3
    assert not store.put(tokens[1], _entry(rows=keep_mod.MAX_GT_ROWS + 1))  # too many rows: replaced by nothing
    assert store.get(tokens[1]) is None


def test_idle_entries_expire():
    now = [0.0]
    store = InputStore(StoreLimits(idle_s=60), clock=lambda: now[0])
    old, used = keep_mod.new_token(), keep_mod.new_token()
    store.put(old, _entry())
    store.put(used, _entry())
    now[0] = 50.0
    assert store.get(used)  # a use restarts its idle time
    now[0] = 100.0
    assert store.get(old) is None and store.get(used) is not None
    now[0] = 161.0
    assert store.get(used) is None and store.nbytes == 0


def test_many_sessions_at_once_keep_the_bounds():
    store = InputStore(StoreLimits(max_entries=20, max_bytes=50 * _entry(500).nbytes()))

    def session():
        token = keep_mod.new_token()
        for k in range(200):
            store.put(token, _entry(500 + k % 3))
            store.get(token)

    threads = [threading.Thread(target=session) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store) <= 20 and store.nbytes <= store.limits.max_bytes
    assert store.nbytes == sum(e.nbytes() for e, _, _ in store._entries.values())  # the count never drifts


def test_plain_rows_from_the_table():
    rows = [{"label": "dog", "x1": np.int64(3), "y1": np.float32(2.5), "x2": 10, "y2": "7", "difficult": np.True_,
             "crowd": float("nan")},
            {"label": float("nan"), "x1": None, "y1": float("nan"), "x2": None, "y2": None},  # just added: left out
            {"label": None, "x1": "a", "y1": math.inf, "x2": 1, "y2": 2}]
    out = keep_mod.plain_rows(rows)
    assert out == ({"label": "dog", "x1": 3.0, "y1": 2.5, "x2": 10.0, "y2": 7.0, "difficult": True, "crowd": False},
                   {"label": "", "x1": None, "y1": None, "x2": 1.0, "y2": 2.0, "difficult": False, "crowd": False})
    assert all(type(r["x1"]) in (float, type(None)) for r in out)


def test_describe_source():
    assert keep_mod.describe_source(("file a.xml", "typed")) == "annotation file a.xml, edited in the table"
    assert keep_mod.describe_source(("image", "drawn")) == "the image's own boxes, boxes drawn on the Home page"
    assert keep_mod.describe_source(()) == "none"
