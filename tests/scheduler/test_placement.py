from hatoba.scheduler.placement import Demand, NodeCapacity, place, place_many


def node(node_id: str, cpu: int = 2048, memory: int = 1024, **kw: object) -> NodeCapacity:
    return NodeCapacity(node_id=node_id, cpu=cpu, memory=memory, **kw)  # type: ignore[arg-type]


def test_fits_on_the_fullest_feasible_node() -> None:
    nodes = [node("a", used_memory=100), node("b", used_memory=600), node("c", used_memory=1000)]
    p = place(Demand(memory=200), nodes)
    assert p.node_id == "b"  # c cannot take it, b is fuller than a
    assert [r.reason for r in p.rejections] == ["RESOURCE:MEMORY"]


def test_no_fit_reports_every_reason_per_node() -> None:
    nodes = [node("a", cpu=1024, memory=512), node("b", accepting=False)]
    p = place(Demand(cpu=2048, memory=600), nodes)
    assert not p.placed
    reasons = {(r.node_id, r.reason) for r in p.rejections}
    assert reasons == {
        ("a", "RESOURCE:MEMORY"),
        ("a", "RESOURCE:CPU"),
        ("b", "INACTIVE_NODE"),
    }
    assert p.reason == "RESOURCE:MEMORY"
    assert "needs 600 MiB, 512 of 512 free" in p.rejections[0].detail


def test_place_many_sees_its_own_reservations() -> None:
    placements = place_many(Demand(memory=400), 3, [node("a", memory=1000)])
    assert [p.node_id for p in placements] == ["a", "a", None]
    assert placements[2].reason == "RESOURCE:MEMORY"


def test_ports_conflict() -> None:
    p = place(Demand(host_ports=frozenset({80})), [node("a", used_ports=frozenset({80, 443}))])
    assert p.reason == "RESOURCE:PORTS"


def test_no_nodes() -> None:
    p = place(Demand(), [])
    assert not p.placed and p.reason == "NO_NODES"
