"""Parameters: versions never reused, overwrite rule, labels, eviction, paths, rotation CAS."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hatoba.model.errors import Conflict, NotFound, ValidationFailed
from hatoba.model.params import MAX_VERSIONS, ParameterType, StoredParameter
from hatoba.store.sql import SqlStore
from tests.store.conftest import T0


def make_param(
    name: str, value: str = "v", *, labels: tuple[str, ...] = (), secure: bool = False
) -> StoredParameter:
    if secure:
        return StoredParameter(
            name=name,
            type=ParameterType.SECURE_STRING,
            version=1,
            ciphertext=f"hb1:{value}",
            labels=labels,
            last_modified_at=T0,
        )
    return StoredParameter(
        name=name,
        type=ParameterType.STRING,
        version=1,
        value=value,
        labels=labels,
        last_modified_at=T0,
    )


async def versions(store: SqlStore, name: str) -> list[int]:
    return [p.version for p in await store.get_parameter_versions(name)]


async def test_versions_increment_and_round_trip(store: SqlStore) -> None:
    first = await store.put_parameter(make_param("/app/db", "a"), overwrite=False)
    second = await store.put_parameter(
        make_param("/app/db", "b").model_copy(update={"version": 42}), overwrite=True
    )
    assert (first.version, second.version) == (1, 2)  # the given version is ignored
    got = await store.get_parameter_versions("/app/db")
    assert got == [first, second]
    assert [p.value for p in got] == ["a", "b"]
    assert await store.get_parameter_versions("/nope") == []


async def test_existing_name_needs_overwrite_and_nothing_is_written(store: SqlStore) -> None:
    await store.put_parameter(make_param("/x"), overwrite=False)
    with pytest.raises(Conflict, match="parameter /x already exists; overwrite it explicitly"):
        await store.put_parameter(make_param("/x", "other"), overwrite=False)
    assert await versions(store, "/x") == [1]
    # the refused write handed out no version number
    again = await store.put_parameter(make_param("/x", "other"), overwrite=True)
    assert again.version == 2


async def test_writes_append_param_changes(store: SqlStore) -> None:
    seq = await store.last_change_seq()
    await store.put_parameter(make_param("/a"), overwrite=False)
    await store.label_parameter_version("/a", 1, ["prod"])
    await store.delete_parameter("/a")
    changes = await store.changes_since(seq)
    assert [(c.kind, c.key) for c in changes] == [("param", "/a")] * 3


async def test_concurrent_puts_get_distinct_versions(store: SqlStore) -> None:
    results = await asyncio.gather(
        *(store.put_parameter(make_param("/c", str(i)), overwrite=True) for i in range(20))
    )
    assert sorted(p.version for p in results) == list(range(1, 21))


async def test_concurrent_puts_from_separate_connections(new_store: Any) -> None:
    stores = [await new_store() for _ in range(4)]
    results = await asyncio.gather(
        *(
            s.put_parameter(make_param("/c", "v", labels=("live",)), overwrite=True)
            for s in stores
            for _ in range(5)
        )
    )
    assert sorted(p.version for p in results) == list(range(1, 21))
    stored = await stores[0].get_parameter_versions("/c")
    assert [p.version for p in stored] == list(range(1, 21))
    # whichever put committed last holds the label, and only it
    assert [p.version for p in stored if p.labels] == [20]


async def test_concurrent_first_puts_without_overwrite_admit_one(new_store: Any) -> None:
    stores = [await new_store() for _ in range(4)]
    results = await asyncio.gather(
        *(s.put_parameter(make_param("/once"), overwrite=False) for s in stores),
        return_exceptions=True,
    )
    assert sum(isinstance(r, StoredParameter) for r in results) == 1
    assert sum(isinstance(r, Conflict) for r in results) == 3
    assert await versions(stores[0], "/once") == [1]


async def test_labels_move_between_versions(store: SqlStore) -> None:
    await store.put_parameter(make_param("/l", labels=("prod", "beta")), overwrite=False)
    v2 = await store.put_parameter(make_param("/l", labels=("prod",)), overwrite=True)
    assert v2.labels == ("prod",)
    assert [p.labels for p in await store.get_parameter_versions("/l")] == [("beta",), ("prod",)]

    back = await store.label_parameter_version("/l", 1, ["prod", "stable"])
    assert back.version == 1 and back.labels == ("beta", "prod", "stable")
    assert [p.labels for p in await store.get_parameter_versions("/l")] == [
        ("beta", "prod", "stable"),
        (),
    ]
    # an unlabelled put leaves labels where they are
    await store.put_parameter(make_param("/l"), overwrite=True)
    assert [p.labels for p in await store.get_parameter_versions("/l")][2] == ()


async def test_label_errors(store: SqlStore) -> None:
    with pytest.raises(NotFound, match="parameter /l not found"):
        await store.label_parameter_version("/l", 1, ["prod"])
    await store.put_parameter(make_param("/l"), overwrite=False)
    with pytest.raises(NotFound, match="no version 3"):
        await store.label_parameter_version("/l", 3, ["prod"])
    with pytest.raises(ValidationFailed):
        await store.label_parameter_version("/l", 1, ["1bad"])
    with pytest.raises(ValidationFailed):
        await store.put_parameter(make_param("/l", labels=("aws-x",)), overwrite=True)
    assert [p.labels for p in await store.get_parameter_versions("/l")] == [()]


async def test_eviction_keeps_100_and_never_reuses_versions(store: SqlStore) -> None:
    for _ in range(MAX_VERSIONS):
        await store.put_parameter(make_param("/e"), overwrite=True)
    assert await versions(store, "/e") == list(range(1, 101))
    newest = await store.put_parameter(make_param("/e"), overwrite=True)
    assert newest.version == 101
    assert await versions(store, "/e") == list(range(2, 102))
    assert (await store.put_parameter(make_param("/e"), overwrite=True)).version == 102
    assert await versions(store, "/e") == list(range(3, 103))


async def test_eviction_refused_when_oldest_is_labelled(store: SqlStore) -> None:
    await store.put_parameter(make_param("/e", labels=("keep",)), overwrite=False)
    for _ in range(MAX_VERSIONS - 1):
        await store.put_parameter(make_param("/e"), overwrite=True)
    seq = await store.last_change_seq()
    with pytest.raises(Conflict, match="version 1 is the oldest"):
        await store.put_parameter(make_param("/e"), overwrite=True)
    assert await versions(store, "/e") == list(range(1, 101))
    assert await store.changes_since(seq) == []
    # a put that moves the label off the oldest frees it to go; no number was burnt
    moved = await store.put_parameter(make_param("/e", labels=("keep",)), overwrite=True)
    assert moved.version == 101 and moved.labels == ("keep",)
    assert await versions(store, "/e") == list(range(2, 102))


async def test_list_by_path_recursive_and_direct(store: SqlStore) -> None:
    names = ["/prod/a", "/prod/b/c", "/prod/b/d/e", "/production/x", "/top", "/Prod/z"]
    for name in names:
        await store.put_parameter(make_param(name, "old"), overwrite=False)
    await store.put_parameter(make_param("/prod/a", "new"), overwrite=True)

    direct = await store.list_parameters("/prod", recursive=False)
    assert [(p.name, p.version, p.value) for p in direct] == [("/prod/a", 2, "new")]
    deep = await store.list_parameters("/prod/", recursive=True)
    assert [p.name for p in deep] == ["/prod/a", "/prod/b/c", "/prod/b/d/e"]
    assert [p.name for p in await store.list_parameters("/prod/b", recursive=False)] == [
        "/prod/b/c"
    ]
    assert [p.name for p in await store.list_parameters("/", recursive=False)] == ["/top"]
    everything = await store.list_parameters("/", recursive=True)
    assert [p.name for p in everything] == sorted(names)
    assert await store.list_parameters("/nope", recursive=True) == []
    assert await store.list_parameters("/prod/a", recursive=True) == []


async def test_list_by_path_escapes_like_wildcards(store: SqlStore) -> None:
    for name in ("/a_b/x", "/aXb/y", "/a%/z", "/aQQ/w"):
        await store.put_parameter(make_param(name), overwrite=False)
    assert [p.name for p in await store.list_parameters("/a_b", recursive=True)] == ["/a_b/x"]
    assert [p.name for p in await store.list_parameters("/a%", recursive=True)] == ["/a%/z"]


async def test_delete(store: SqlStore) -> None:
    for _ in range(3):
        await store.put_parameter(make_param("/d"), overwrite=True)
    await store.put_parameter(make_param("/d2"), overwrite=False)
    assert await store.delete_parameter("/d") == 3
    assert await store.get_parameter_versions("/d") == []
    assert [p.name for p in await store.list_parameters("/", recursive=True)] == ["/d2"]
    with pytest.raises(NotFound):
        await store.delete_parameter("/d")
    with pytest.raises(NotFound):
        await store.delete_parameter("/never")
    # written again it needs no overwrite, and numbering carries on past the deleted ones
    again = await store.put_parameter(make_param("/d"), overwrite=False)
    assert again.version == 4


async def test_long_names_fit(store: SqlStore) -> None:
    name = "/" + "/".join(["x" * 60] * 15)  # 915 characters, past changes' old 255
    stored = await store.put_parameter(make_param(name), overwrite=False)
    assert await store.get_parameter_versions(name) == [stored]


async def test_rotation_lists_secure_versions_and_compares_and_sets(store: SqlStore) -> None:
    await store.put_parameter(make_param("/s", "one", secure=True), overwrite=False)
    await store.put_parameter(make_param("/s", "two", secure=True, labels=("l",)), overwrite=True)
    await store.put_parameter(make_param("/plain"), overwrite=False)
    secure = await store.secure_parameter_versions()
    assert [(p.name, p.version, p.ciphertext) for p in secure] == [
        ("/s", 1, "hb1:one"),
        ("/s", 2, "hb1:two"),
    ]

    seq = await store.last_change_seq()
    assert await store.replace_ciphertext("/s", 2, "hb1:two", "hb1:TWO")
    assert [(c.kind, c.key) for c in await store.changes_since(seq)] == [("param", "/s")]
    assert not await store.replace_ciphertext("/s", 2, "hb1:two", "hb1:again")  # stale
    assert not await store.replace_ciphertext("/s", 9, "hb1:one", "hb1:x")  # no such version
    assert not await store.replace_ciphertext("/plain", 1, "v", "hb1:x")  # not a secret
    got = await store.get_parameter_versions("/s")
    assert [(p.ciphertext, p.labels) for p in got] == [("hb1:one", ()), ("hb1:TWO", ("l",))]
    assert got[1].last_modified_at == T0  # re-encryption is not a modification


async def test_concurrent_rotation_one_wins(new_store: Any) -> None:
    a, b = await new_store(), await new_store()
    await a.put_parameter(make_param("/s", "one", secure=True), overwrite=False)
    results = await asyncio.gather(
        a.replace_ciphertext("/s", 1, "hb1:one", "hb1:A"),
        b.replace_ciphertext("/s", 1, "hb1:one", "hb1:B"),
    )
    assert sorted(results) == [False, True]
    (stored,) = await a.get_parameter_versions("/s")
    assert stored.ciphertext == ("hb1:A" if results[0] else "hb1:B")
