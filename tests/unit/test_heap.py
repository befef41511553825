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
