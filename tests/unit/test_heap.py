import gc
from collections.abc import Iterator

import pytest

from shared import heap


@pytest.fixture(autouse=True)
def _unfrozen_after() -> Iterator[None]:
    yield
    gc.unfreeze()  # the rest of the test session collects as usual


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_settle_frees_cycles_then_exempts_the_survivors_from_collections() -> None:
    a, b = Node(), Node()
    a.other, b.other = b, a  # a reference cycle: only the collector can free it
    del a, b
    survivor = Node()
    assert heap.settle() >= 2
    assert gc.get_freeze_count() > 0
    # A later full collection no longer walks the survivors (the point: its cost is what came after).
    assert not any(o is survivor for o in gc.get_objects())
    young = Node()
    assert any(o is young for o in gc.get_objects())


def test_no_collection_runs_inside_collections_after_and_the_collector_is_back_after_it() -> None:
    runs: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            runs.append(info["generation"])

    gc.callbacks.append(count)
    try:
        with heap.collections_after():
            cycles = []
            for _ in range(20 * gc.get_threshold()[0]):  # far past the young generation's threshold
                a, b = Node(), Node()
                a.other, b.other = b, a
                cycles.append(a)
            assert runs == []
        assert gc.isenabled()
        Node()  # the first allocation after the block collects what it left
        assert runs
        gc.disable()  # a caller that turned the collector off finds it off after the block
        with heap.collections_after():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
        gc.callbacks.remove(count)
