"""Store: immutable numbered generations, atomic switch, bounded by garbage collection."""

from __future__ import annotations

import threading
import time

import pytest

from nglive.store import Store


def test_generations_are_numbered_and_readable():
    store = Store()
    g0 = store.write_generation("layer/props", {"info": b"a"})
    g1 = store.write_generation("layer/props", {"info": b"b"})
    assert (g0.number, g1.number) == (0, 1)
    assert store.current("layer/props") == g1
    assert store.read("layer/props/0/info") == b"a"
    assert store.read("layer/props/1/info") == b"b"
    assert store.size("layer/props/1/info") == 1


def test_superseded_generation_deleted_after_grace_period():
    store = Store(grace_seconds=0.0)
    store.write_generation("p", {"info": b"a", "x/1": b"xx"})
    store.write_generation("p", {"info": b"b"})
    # the second write retired generation 0 and, with no grace, collected it
    assert store.list("p/0/") == []
    assert store.read("p/1/info") == b"b"
    assert store.size("p/0/x/1") is None


def test_grace_period_keeps_old_generation_readable():
    store = Store(grace_seconds=3600)
    store.write_generation("p", {"info": b"a"})
    store.write_generation("p", {"info": b"b"})
    assert store.read("p/0/info") == b"a"
    assert store.collect_garbage(force=True) == 1
    assert store.read("p/0/info") is None


def test_prefixes_do_not_leak_into_each_other():
    store = Store(grace_seconds=0)
    store.write_generation("a", {"info": b"1"})
    store.write_generation("ab", {"info": b"2"})
    store.write_generation("a", {"info": b"3"})
    assert store.read("ab/0/info") == b"2"
    assert store.prefixes() == ["a", "ab"]


def test_file_store_resumes_numbering(tmp_path):
    Store(tmp_path).write_generation("p", {"info": b"a"})
    again = Store(tmp_path)
    assert again.write_generation("p", {"info": b"b"}).number == 1
    assert (tmp_path / "p" / "0" / "info").read_bytes() == b"a"


@pytest.mark.parametrize("key", ["../etc/passwd", "a//b", "./x", "a/../b", "", "a\\b"])
def test_unsafe_keys_rejected(key):
    store = Store()
    with pytest.raises(ValueError):
        store.write_generation("p", {key: b"x"})
    assert store.current("p") is None


@pytest.mark.parametrize("prefix", ["../up", "/abs", "a b", ""])
def test_unsafe_prefixes_rejected(prefix):
    with pytest.raises(ValueError, match="prefix"):
        Store().write_generation(prefix, {"info": b"x"})


def test_concurrent_writers_never_expose_partial_generation():
    store = Store(grace_seconds=3600)
    files = {f"k{i}": bytes([i]) * 100 for i in range(50)}
    seen_partial = []

    def reader():
        for _ in range(200):
            gen = store.current("p")
            if gen is not None:
                keys = store.list(gen.path + "/")
                if len(keys) != 50:
                    seen_partial.append(len(keys))

    t = threading.Thread(target=reader)
    t.start()
    for _ in range(20):
        store.write_generation("p", files)
    t.join()
    assert seen_partial == []
    assert store.current("p").number == 19


def test_retired_generations_are_collected_without_further_writes():
    store = Store(grace_seconds=0.2)
    store.write_generation("p", {"info": b"a" * 1000})
    store.write_generation("p", {"info": b"b"})
    assert store.read("p/0/info") is not None  # within the grace period
    deadline = time.monotonic() + 5
    while store.read("p/0/info") is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.read("p/0/info") is None
    assert store.retired_bytes() == 0
    assert store.read("p/1/info") == b"b"


def test_retired_bytes_stay_bounded_whatever_the_edit_rate():
    store = Store(grace_seconds=3600, max_retired_bytes=1_000_000)
    value = bytes(300_000)
    for _ in range(30):
        store.write_generation("p", {"a": value, "b": b"x"})
        assert store.retired_bytes() <= 1_000_000
    keys = store.list("p/")
    assert len(keys) <= 2 * (1 + 1_000_000 // 300_000)
    assert store.read(store.current("p").path + "/a") == value


def test_remove_deletes_every_generation_of_a_prefix():
    store = Store(grace_seconds=3600)
    for _ in range(3):
        store.write_generation("layer/a", {"info": b"x"})
        store.write_generation("layer/b", {"info": b"y"})
    store.write_generation("other", {"info": b"z"})
    store.remove("layer")
    assert store.list("layer/") == [] and store.prefixes() == ["other"]
    assert store.retired_bytes() == 0
    assert store.write_generation("layer/a", {"info": b"w"}).number == 3  # never reused


def test_closed_store_deletes_and_refuses_writes():
    store = Store()
    store.write_generation("p", {"info": b"x"})
    store.close(delete=True)
    assert store.list() == []
    with pytest.raises(RuntimeError, match="closed"):
        store.write_generation("p", {"info": b"y"})


def test_memory_generations_of_many_small_files():
    from nglive.packed import PackedFiles

    store = Store(grace_seconds=3600)
    files = {f"by_id/{i}": i.to_bytes(4, "little") for i in range(100_000)}
    files["info"] = b"{}"
    gen = store.write_generation("layer/annotations", files)
    assert store.read(f"{gen.path}/by_id/77777") == (77777).to_bytes(4, "little")
    assert store.size(f"{gen.path}/info") == 2
    value, etag = store.lookup(f"{gen.path}/by_id/5")
    assert value == (5).to_bytes(4, "little") and etag.startswith('"')
    assert store.lookup(f"{gen.path}/by_id/100000") is None
    assert store.lookup("layer/annotations/9/info") is None
    assert len(store.list("layer/annotations/0/by_id/")) == 100_000
    assert store.list("layer/annotations/0/in") == ["layer/annotations/0/info"]
    packed = store.write_generation("layer/annotations", PackedFiles.pack(files))
    assert store.read(f"{packed.path}/by_id/3") == (3).to_bytes(4, "little")
    assert packed.nbytes == gen.nbytes == 400_002
    files.clear()  # the store kept its own mapping
    assert store.read(f"{gen.path}/info") == b"{}"


@pytest.mark.parametrize("bad", ["by_id/../x", "/abs", "a//b", "tail/", "a\\b", "nul\x00",
                                 "line\nbreak", ""])
def test_one_bad_key_among_many_is_named(bad):
    files = {f"by_id/{i}": b"x" for i in range(20_000)}
    files[bad] = b"y"
    store = Store()
    with pytest.raises(ValueError, match="store key"):
        store.write_generation("p", files)
    assert store.current("p") is None and store.list() == []


def test_only_the_newest_superseded_generations_are_kept_per_prefix():
    store = Store(grace_seconds=3600, max_retired_generations=2)
    for i in range(10):
        store.write_generation("a", {"info": bytes([i])})
        store.write_generation("b", {"info": bytes([i])})
    assert [k.split("/")[1] for k in store.list("a/")] == ["7", "8", "9"]
    assert store.retired_bytes() == 4 and store.stored_bytes() == 6
