"""Team review (issue 33): two reviewers' disagreements and the summary of the changes, values by hand."""
import pytest

from noisycore import teamreview
from noisycore.errors import UserError
from noisycore.review import ReviewStore

CLASSES = ["cat", "dog", "fox"]
GIVEN = [0, 1, 2, 0, 1, 2]          # items a..f


@pytest.fixture
def store(tmp_path):
    """a: alice -> dog, then bob keeps cat (they disagree; bob's is the latest). b: alice accepts fox, bob
    relabels to fox (they agree). c: alice excludes. d: alice relabels, then undoes it. e: bob excludes,
    then alice relabels to cat (they disagree). f: nobody."""
    s = ReviewStore(tmp_path / "review.sqlite")
    rec = lambda item, decision, reviewer, new=None, proposed=None: s.record(  # noqa: E731
        item_id=item, index="abcdef".index(item), decision=decision, previous_label=GIVEN["abcdef".index(item)],
        new_label=new, reviewer=reviewer, proposed_label=proposed)
    rec("a", "relabel", "alice", 1)
    rec("a", "keep", "bob")
    rec("b", "accept", "alice", proposed=2)
    rec("b", "relabel", "bob", 2)
    rec("c", "exclude", "alice")
    rec("d", "relabel", "alice", 2)
    s.undo(reviewer="alice")
    rec("e", "exclude", "bob")
    rec("e", "relabel", "alice", 0)
    return s


def test_disagreements_list_each_reviewers_opinion_and_the_decision_in_force(store):
    out = teamreview.disagreements(store, class_names=CLASSES)
    assert list(out.columns) == ["id", "index", "given_label", "alice", "bob", "decided_now"]
    assert out.values.tolist() == [
        ["a", 0, "cat", "relabelled to dog", "kept cat", "kept cat (bob)"],
        ["e", 4, "dog", "relabelled to cat", "excluded", "relabelled to cat (alice)"]]
    assert teamreview.reviewers(store) == ["alice", "bob"]


def test_the_summary_counts_before_and_after_per_pair_and_per_class(store):
    pairs = teamreview.change_summary(store, class_names=CLASSES)
    assert pairs.values.tolist() == [["dog", "fox", 1, "bob"], ["fox", "(excluded)", 1, "alice"],
                                     ["dog", "cat", 1, "alice"]]
    per_class = teamreview.class_summary(GIVEN, store, class_names=CLASSES)
    assert per_class.values.tolist() == [["cat", 2, 3, 0, 1, 0], ["dog", 2, 0, 2, 0, 0], ["fox", 2, 2, 0, 1, 1]]
    assert per_class["after"].sum() == len(GIVEN) - 1           # one image excluded


def test_one_reviewer_or_none_has_no_disagreement(tmp_path):
    s = ReviewStore(tmp_path / "review.sqlite")
    assert teamreview.disagreements(s, class_names=CLASSES).empty
    assert teamreview.change_summary(s, class_names=CLASSES).empty
    assert teamreview.class_summary(GIVEN, s, class_names=CLASSES)["after"].tolist() == [2, 2, 2]
    s.record(item_id="a", index=0, decision="relabel", previous_label=0, new_label=1, reviewer="alice")
    s.record(item_id="a", index=0, decision="keep", previous_label=0, new_label=None, reviewer="alice")
    assert teamreview.disagreements(s, class_names=CLASSES).empty   # changing one's own mind is no dispute


def test_bad_inputs_are_named(store):
    with pytest.raises(UserError, match="class indices 0..2"):
        teamreview.class_summary([0, 3], store, class_names=CLASSES)
    with pytest.raises(UserError, match="ReviewStore"):
        teamreview.disagreements("review.sqlite", class_names=CLASSES)
