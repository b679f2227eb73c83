"""tensorstore's ``neuroglancer_uint64_sharded`` driver as the tests' oracle: it packs
shards one key at a time (how nglive did before its own packer) and reads them back."""

from __future__ import annotations

import uuid

import tensorstore as ts


def _sharded(root: str, sharding: dict, context: ts.Context) -> ts.KvStore:
    return ts.KvStore.open({"driver": "neuroglancer_uint64_sharded", "base": root,
                            "metadata": sharding}, context=context).result()


def pack_with_tensorstore(keys: list[int], values: list[bytes], sharding: dict) -> dict:
    """``{shard file name: bytes}`` as tensorstore's driver writes them."""
    context = ts.Context()
    root = f"memory://oracle-{uuid.uuid4().hex}/"
    txn = ts.Transaction()
    kv = _sharded(root, sharding, context).with_transaction(txn)
    for k, v in zip(keys, values, strict=True):
        kv.write(int(k).to_bytes(8, "big"), v)
    txn.commit_async().result()
    base = ts.KvStore.open(root, context=context).result()
    names = base.list().result()
    return {n.decode(): base.read(n).result().value for n in names}


def read_with_tensorstore(files: dict, sharding: dict, keys: list[int], *,
                          listing: bool = True) -> tuple[list[int] | None, dict]:
    """Store ``files`` in a fresh ``memory://`` kvstore and read them through the
    driver: (every key it lists, or None without ``listing``; {key: value or None}).

    tensorstore lists by visiting every shard number, so listing is only asked for with
    few shard bits (and it lists nothing at ``shard_bits`` 64).
    """
    context = ts.Context()
    root = f"memory://read-{uuid.uuid4().hex}/"
    base = ts.KvStore.open(root, context=context).result()
    for name, data in files.items():
        base.write(name, data).result()
    kv = _sharded(root, sharding, context)
    listed = sorted(int.from_bytes(k, "big") for k in kv.list().result()) if listing else None
    futures = {k: kv.read(int(k).to_bytes(8, "big")) for k in keys}
    values = {}
    for k, f in futures.items():
        r = f.result()
        values[k] = r.value if r.state == "value" else None
    return listed, values
