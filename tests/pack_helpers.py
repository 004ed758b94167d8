"""Test helper: move a store's pack records into the older one-file-a-record layout (still
read), for tests that attack or inspect record files one by one."""

from __future__ import annotations

import shutil

from tipi.runcache.content import ContentStore
from tipi.runcache.packs import PackEntry


def unpack(store: ContentStore) -> None:
    """Write every record in the store's packs as `runs/<2 hex>/<key>.<name>`, then remove
    the packs."""
    store.close()
    for where, record in list(store.all_records()):
        if isinstance(where, PackEntry):
            path = store.record_path(record.key, record.name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(record.to_bytes())
    shutil.rmtree(store.root / "packs", ignore_errors=True)
    store._packs._index = None
