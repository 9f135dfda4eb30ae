"""The audit log's Merkle tree, with no servers: roots, the incremental frontier and
both kinds of proof against a reference written straight from RFC 6962's recursive
definitions, and proofs that stop verifying once anything in them is wrong."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from order_core.domain.merkle import (
    EMPTY_ROOT,
    Frontier,
    consistency_proof,
    hash_children,
    hash_leaf,
    inclusion_proof,
    root,
    verify_consistency,
    verify_inclusion,
)

MAX_SIZE = 70


# The reference: RFC 6962 section 2.1, recursive, on lists of leaf hashes, sharing
# nothing with the module but hashlib.


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _k(n: int) -> int:
    """The largest power of two smaller than n, by counting rather than bit tricks."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: Sequence[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return d[0]
    k = _k(n)
    return _node(ref_mth(d[:k]), ref_mth(d[k:]))


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def ref_proof(m: int, d: Sequence[bytes]) -> list[bytes]:
    return ref_subproof(m, d, True)


def leaves_of(size: int, salt: int) -> list[bytes]:
    # Distinct leaves: with two equal ones a proof for the wrong index could hold.
    return [hash_leaf(f"{salt}:{i}".encode()) for i in range(size)]


salts = st.integers(min_value=0, max_value=2**32)


@st.composite
def tree_and_index(draw: st.DrawFn) -> tuple[list[bytes], int, int]:
    """Leaves, a tree size among them and a leaf index in that tree."""
    leaves = leaves_of(draw(st.integers(1, MAX_SIZE)), draw(salts))
    size = draw(st.integers(1, len(leaves)))
    return leaves, size, draw(st.integers(0, size - 1))


@st.composite
def tree_and_pair(draw: st.DrawFn) -> tuple[list[bytes], int, int]:
    """Leaves and two tree sizes 1 <= first <= second among them."""
    leaves = leaves_of(draw(st.integers(1, MAX_SIZE)), draw(salts))
    second = draw(st.integers(1, len(leaves)))
    return leaves, draw(st.integers(1, second)), second


def flipped(proof: list[bytes], at: int, bit: int) -> list[bytes]:
    hashed = bytearray(proof[at])
    hashed[bit // 8] ^= 1 << (bit % 8)
    return [*proof[:at], bytes(hashed), *proof[at + 1 :]]


def test_the_reference_itself_matches_rfc_6962_on_a_small_tree() -> None:
    # A reference that agrees with the module only by sharing its bug is no
    # reference: pin its shape for 5 leaves by hand.
    d = leaves_of(5, 0)
    left = _node(_node(d[0], d[1]), _node(d[2], d[3]))
    assert ref_mth(d) == _node(left, d[4])
    assert ref_path(4, d) == [left]
    assert ref_path(2, d) == [d[3], _node(d[0], d[1]), d[4]]
    assert ref_proof(2, d) == [_node(d[2], d[3]), d[4]]
    assert ref_proof(3, d) == [d[2], d[3], _node(d[0], d[1]), d[4]]


def test_the_empty_tree_has_the_hash_of_the_empty_string_as_its_root() -> None:
    expected = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root([]).hex() == expected
    assert EMPTY_ROOT.hex() == expected
    assert Frontier().root().hex() == expected


def test_a_three_leaf_tree_has_the_root_worked_out_by_hand() -> None:
    a, b, c = (hashlib.sha256(b"\x00" + data).digest() for data in (b"a", b"b", b"c"))
    ab = hashlib.sha256(b"\x01" + a + b).digest()
    expected = hashlib.sha256(b"\x01" + ab + c).digest()
    assert [hash_leaf(b"a"), hash_leaf(b"b"), hash_leaf(b"c")] == [a, b, c]
    assert hash_children(a, b) == ab
    assert root([a, b, c]) == expected


def test_the_leaf_and_node_prefixes_keep_a_leaf_from_passing_for_a_node() -> None:
    a, b = hash_leaf(b"a"), hash_leaf(b"b")
    assert hash_leaf(a + b) != hash_children(a, b)


@given(st.integers(1, MAX_SIZE), salts)
def test_the_root_is_the_rfc_6962_tree_head(size: int, salt: int) -> None:
    leaves = leaves_of(size, salt)
    assert root(leaves) == ref_mth(leaves)


@given(st.integers(1, MAX_SIZE), salts)
def test_the_frontier_holds_the_root_and_perfect_subtrees_after_every_append(
    size: int, salt: int
) -> None:
    leaves = leaves_of(size, salt)
    frontier = Frontier()
    for n in range(1, size + 1):
        frontier.append(leaves[n - 1])
        assert frontier.size == n
        assert frontier.root() == ref_mth(leaves[:n])
        assert len(frontier.hashes) == n.bit_count()
        # One subtree per one bit of the size, largest first: what lets a restarted
        # sequencer go on from the stored frontier alone.
        subtrees, start = [], 0
        for bit in reversed(range(n.bit_length())):
            if n >> bit & 1:
                subtrees.append(ref_mth(leaves[start : start + (1 << bit)]))
                start += 1 << bit
        assert frontier.hashes == subtrees


@given(st.integers(1, MAX_SIZE), salts)
def test_a_frontier_rebuilt_from_its_size_and_hashes_goes_on_the_same(size: int, salt: int) -> None:
    leaves = leaves_of(size + 1, salt)
    frontier = Frontier()
    for leaf in leaves[:size]:
        frontier.append(leaf)
    rebuilt = Frontier(size=frontier.size, hashes=list(frontier.hashes))
    rebuilt.append(leaves[size])
    assert rebuilt.root() == ref_mth(leaves)


@pytest.mark.parametrize(("size", "count"), [(3, 1), (4, 2), (1, 0), (0, 1)])
def test_a_frontier_with_the_wrong_number_of_subtrees_is_refused(size: int, count: int) -> None:
    with pytest.raises(ValueError, match="perfect"):
        Frontier(size=size, hashes=[hash_leaf(bytes([i])) for i in range(count)])


@given(tree_and_index())
def test_inclusion_proofs_are_rfc_6962_paths_and_verify(case: tuple[list[bytes], int, int]) -> None:
    leaves, size, index = case
    proof = inclusion_proof(leaves, index, size)
    assert proof == ref_path(index, leaves[:size])
    assert verify_inclusion(leaves[index], index, size, proof, ref_mth(leaves[:size]))


@given(tree_and_index(), st.data())
def test_a_mutated_inclusion_proof_does_not_verify(
    case: tuple[list[bytes], int, int], data: st.DataObject
) -> None:
    leaves, size, index = case
    tree_root = ref_mth(leaves[:size])
    proof = inclusion_proof(leaves, index, size)
    leaf = leaves[index]

    other_leaf = leaves_of(1, -1)[0]
    assert not verify_inclusion(other_leaf, index, size, proof, tree_root)
    assert not verify_inclusion(leaf, index, size, [*proof, leaves[0]], tree_root)
    assert not verify_inclusion(leaf, index, size, proof, hash_leaf(b"another root"))
    if proof:
        at = data.draw(st.integers(0, len(proof) - 1), label="element")
        bit = data.draw(st.integers(0, 255), label="bit")
        assert not verify_inclusion(leaf, index, size, flipped(proof, at, bit), tree_root)
        dropped = data.draw(st.integers(0, len(proof) - 1), label="dropped")
        assert not verify_inclusion(
            leaf, index, size, [*proof[:dropped], *proof[dropped + 1 :]], tree_root
        )
    if size > 1:
        wrong = data.draw(st.integers(0, size - 1).filter(lambda i: i != index), label="index")
        assert not verify_inclusion(leaf, wrong, size, proof, tree_root)
    # Against the root of the other size: the same proof can hold for two sizes
    # whose paths have the same shape, but only with the root it was made for.
    if len(leaves) > index + 1:
        wrong_size = data.draw(
            st.integers(index + 1, len(leaves)).filter(lambda s: s != size), label="size"
        )
        assert not verify_inclusion(leaf, index, wrong_size, proof, ref_mth(leaves[:wrong_size]))
    assert not verify_inclusion(leaf, size, size, proof, tree_root)
    assert not verify_inclusion(leaf, -1, size, proof, tree_root)


def twice_the_tree(size: int) -> int:
    """A size whose tree has a level more than any tree of `size` leaves."""
    whole = 1
    while whole < size:
        whole *= 2
    return 2 * whole


@given(tree_and_index())
def test_an_inclusion_proof_does_not_stretch_to_a_larger_tree(
    case: tuple[list[bytes], int, int],
) -> None:
    leaves, size, index = case
    # With the very root it was made for: only the proof's length against the
    # claimed size tells that it stops a level short.
    proof = inclusion_proof(leaves, index, size)
    tree_root = ref_mth(leaves[:size])
    assert not verify_inclusion(leaves[index], index, twice_the_tree(size), proof, tree_root)


@pytest.mark.parametrize(
    ("index", "size", "available"), [(0, 0, 3), (3, 3, 3), (-1, 2, 3), (0, 4, 3)]
)
def test_an_inclusion_proof_outside_the_tree_is_refused(
    index: int, size: int, available: int
) -> None:
    with pytest.raises(ValueError, match="no leaf"):
        inclusion_proof(leaves_of(available, 0), index, size)


@given(tree_and_pair())
def test_consistency_proofs_are_rfc_6962_proofs_and_verify(
    case: tuple[list[bytes], int, int],
) -> None:
    leaves, first, second = case
    proof = consistency_proof(leaves, first, second)
    assert proof == ref_proof(first, leaves[:second])
    assert verify_consistency(
        first, second, ref_mth(leaves[:first]), ref_mth(leaves[:second]), proof
    )


@given(tree_and_pair(), st.data())
def test_a_mutated_consistency_proof_does_not_verify(
    case: tuple[list[bytes], int, int], data: st.DataObject
) -> None:
    leaves, first, second = case
    first_root, second_root = ref_mth(leaves[:first]), ref_mth(leaves[:second])
    proof = consistency_proof(leaves, first, second)
    elsewhere = hash_leaf(b"another root")

    assert not verify_consistency(first, second, elsewhere, second_root, proof)
    assert not verify_consistency(first, second, first_root, elsewhere, proof)
    assert not verify_consistency(first, second, first_root, second_root, [*proof, leaves[0]])
    if proof:
        at = data.draw(st.integers(0, len(proof) - 1), label="element")
        bit = data.draw(st.integers(0, 255), label="bit")
        assert not verify_consistency(
            first, second, first_root, second_root, flipped(proof, at, bit)
        )
        dropped = data.draw(st.integers(0, len(proof) - 1), label="dropped")
        assert not verify_consistency(
            first, second, first_root, second_root, [*proof[:dropped], *proof[dropped + 1 :]]
        )
    # Other sizes with their own true roots: the proof ties these two trees only.
    if second > 1:
        other_first = data.draw(st.integers(1, second).filter(lambda m: m != first), label="first")
        assert not verify_consistency(
            other_first, second, ref_mth(leaves[:other_first]), second_root, proof
        )
    if len(leaves) > first:
        other_second = data.draw(
            st.integers(first, len(leaves)).filter(lambda n: n != second), label="second"
        )
        assert not verify_consistency(
            first, other_second, first_root, ref_mth(leaves[:other_second]), proof
        )
    assert not verify_consistency(0, second, first_root, second_root, proof)
    assert not verify_consistency(second + 1, second, first_root, second_root, proof)


@given(tree_and_pair())
def test_a_consistency_proof_does_not_stretch_to_a_larger_tree(
    case: tuple[list[bytes], int, int],
) -> None:
    leaves, first, second = case
    proof = consistency_proof(leaves, first, second)
    first_root, second_root = ref_mth(leaves[:first]), ref_mth(leaves[:second])
    assert not verify_consistency(first, twice_the_tree(second), first_root, second_root, proof)


@given(tree_and_pair())
def test_a_tree_whose_history_was_rewritten_has_no_consistency_proof(
    case: tuple[list[bytes], int, int],
) -> None:
    leaves, first, second = case
    # Change one leaf of the older tree in the newer one: the honest proof of the
    # rewritten history must not tie it to the root signed before.
    rewritten = [*leaves]
    rewritten[first - 1] = hash_leaf(b"rewritten")
    proof = consistency_proof(rewritten, first, second)
    assert not verify_consistency(
        first, second, ref_mth(leaves[:first]), ref_mth(rewritten[:second]), proof
    )


@pytest.mark.parametrize(("first", "second"), [(0, 3), (4, 3), (2, 5), (-1, 2)])
def test_a_consistency_proof_outside_the_leaves_is_refused(first: int, second: int) -> None:
    with pytest.raises(ValueError, match="no consistency proof"):
        consistency_proof(leaves_of(4, 0), first, second)


@settings(max_examples=25)
@given(st.integers(1, MAX_SIZE), salts)
def test_a_tree_is_consistent_with_itself_only_by_an_empty_proof(size: int, salt: int) -> None:
    leaves = leaves_of(size, salt)
    tree_root = ref_mth(leaves)
    assert consistency_proof(leaves, size, size) == []
    assert verify_consistency(size, size, tree_root, tree_root, [])
    assert not verify_consistency(size, size, tree_root, tree_root, [tree_root])
    assert not verify_consistency(size, size, tree_root, hash_leaf(b"other"), [])
