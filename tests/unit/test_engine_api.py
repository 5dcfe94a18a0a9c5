"""The Python API's edge: misuse is an XsearchError with a stable code, never a raw exception or a wrong answer."""

from __future__ import annotations

import math

import pytest

from xsearch.core.errors import CollectionError, UsageError, XsearchError
from xsearch.core.types import Query
from xsearch.engine import Engine

Q = [Query("text", "a red circle")]


@pytest.mark.parametrize("kwargs, code", [
    ({"k": 2.5}, "usage.bad_k"),
    ({"k": "5"}, "usage.bad_k"),
    ({"k": True}, "usage.bad_k"),
    ({"k": 0}, "usage.bad_k"),
    ({"to": None}, "usage.bad_target"),
    ({"to": "smell"}, "usage.bad_target"),
    ({"to": []}, "usage.bad_target"),
    ({"threshold": math.nan}, "usage.bad_threshold"),
    ({"threshold": "0.5"}, "usage.bad_threshold"),
    ({"weights": [math.inf]}, "usage.bad_weights"),
    ({"weights": [1.0, 2.0]}, "usage.weights_count"),
    ({"weights": [0.0]}, "usage.zero_weights"),
    ({"params": {"efSearch": 0}}, "usage.bad_search_param"),
    ({"params": {"nprobe": 10**11}}, "usage.bad_search_param"),
    ({"params": {"bogus": 3}}, "usage.bad_search_param"),
    ({"fusion": "magic", "weights": None}, "usage.bad_fusion"),
])
def test_search_misuse_is_a_coded_usage_error(indexed, kwargs, code):
    with Engine(indexed) as eng:
        with pytest.raises(UsageError) as e:
            eng.search(Q * (2 if kwargs.get("fusion") else 1), **kwargs)
        assert e.value.code == code, e.value
        assert "--" not in e.value.message  # the API names no CLI flag


def test_queries_are_checked(indexed):
    with Engine(indexed) as eng:
        for bad, code in (([], "query.none"), (["red"], "query.invalid"), ([Query("text", "  ")], "query.empty"),
                          ([Query("image", "/no/such.png")], "query.file_missing")):
            with pytest.raises(UsageError) as e:
                eng.search(bad)
            assert e.value.code == code


def test_duplicates_misuse(indexed):
    with Engine(indexed) as eng:
        for kwargs in ({"k": 0}, {"k": 1.5}, {"threshold": 0}, {"threshold": math.nan}, {"modality": "video"}):
            with pytest.raises(UsageError):
                eng.duplicates(**kwargs)


def test_a_different_model_on_an_existing_collection_is_refused(indexed, tmp_path):
    from xsearch.encoders.builtin import BuiltinModel, save_checkpoint

    other = save_checkpoint(BuiltinModel(), tmp_path / "other")
    with Engine(indexed, model=f"builtin:{other}") as eng:
        with pytest.raises(CollectionError) as e:
            eng.search(Q)
        assert e.value.code == "collection.model_mismatch"


def test_errors_serialise_for_a_server(indexed):
    with Engine(indexed) as eng:
        with pytest.raises(XsearchError) as e:
            eng.search(Q, k=10**6)
    d = e.value.to_dict()
    assert d["code"] == "usage.k_too_large" and d["params"]["n"] == 90 and "larger than the collection" in d["message"]


def test_missing_collection(tmp_path):
    with pytest.raises(CollectionError) as e:
        Engine(tmp_path / "nothing").search(Q)
    assert e.value.code == "collection.missing"


@pytest.mark.parametrize("filters", [
    dict(min_duration=math.nan), dict(max_duration=-1.0), dict(min_size=2**70), dict(max_size=1.5),
    dict(since=math.inf), dict(path_glob=5), dict(tag=3),
])
def test_bad_filters_are_coded_usage_errors(indexed, filters):
    from xsearch.core.types import Filters

    with Engine(indexed) as eng:
        with pytest.raises(UsageError):
            eng.search(Q, filters=Filters(**filters))


def test_dates_far_outside_the_epoch_range_compare_like_the_range_ends(indexed):
    import datetime as dt

    from xsearch.core.types import Filters

    with Engine(indexed) as eng:
        assert eng.search(Q, filters=Filters(since=dt.date(1000, 1, 1)))["image"]
        assert eng.search(Q, filters=Filters(until=dt.datetime(9999, 12, 31)))["image"]
        assert not eng.search(Q, filters=Filters(since=dt.datetime(9999, 12, 31)))["image"]


def test_similar_to_all_skips_empty_modalities_and_huge_ids_are_usage_errors(indexed, world, manifest_records):
    with Engine(indexed) as eng:
        out = eng.similar(world / manifest_records[0]["image"], to="all", k=3)
        assert set(out) == {"image", "audio", "text"} and all(len(h) == 3 for h in out.values())
        with pytest.raises(UsageError):
            eng.item(2**70)
