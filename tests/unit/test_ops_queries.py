"""The pure parts of the lineage, audit, schedule and data-service queries: argument
checks that name the field, and descriptions of scheduled commands."""

from __future__ import annotations

import doctest

import pytest

import client.audit
import client.data
import client.lineage
import client.schedules
from client.data import QueryRefused

HOSTILE = ["x'; DROP TABLE scores;--", "../../etc/passwd", 'a"b', "a b", "", "é", "a" * 64, "1abc", None, 3]


@pytest.mark.parametrize("module", [client.audit, client.data, client.lineage, client.schedules])
def test_module_doctests_pass(module):
    result = doctest.testmod(module)
    assert result.failed == 0


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_model_and_dataset_names_are_refused_naming_the_field(value):
    with pytest.raises(QueryRefused) as refused:
        client.data.check_name("model", value)
    assert refused.value.field == "model"


@pytest.mark.parametrize("value", ["x' OR '1'='1", "../x", "a;b", "a b", "", "a\nb", "a" * 129])
def test_hostile_audit_filters_and_schedule_ids_are_refused(value):
    for field in ("actor", "action", "subject"):
        with pytest.raises(QueryRefused) as refused:
            client.audit.check_filter(field, value)
        assert refused.value.field == field
    with pytest.raises(QueryRefused) as refused:
        client.schedules.check_schedule_id(value)
    assert refused.value.field == "schedule_id"


def test_real_names_pass():
    assert client.audit.check_filter("actor", "root.serve") == "root.serve"
    assert client.audit.check_filter("subject", "cancer-1.v2_x") == "cancer-1.v2_x"
    assert client.schedules.check_schedule_id("ingest-iris-0a1b2c3d") == "ingest-iris-0a1b2c3d"
    assert client.data.check_id("batch_id", "0" * 32) == "0" * 32


@pytest.mark.parametrize("limit", [0, -1, 10_001, 2.5, "10", True, None])
def test_a_bad_limit_is_refused_naming_limit(limit):
    with pytest.raises(QueryRefused) as refused:
        client.data.check_limit(limit)
    assert refused.value.field == "limit" and "1 to 10000" in refused.value.reason


@pytest.mark.parametrize("version", [0, -3, "latest", "2.0", True, None, "production; --"])
def test_a_bad_version_is_refused_naming_version(version):
    with pytest.raises(QueryRefused) as refused:
        client.lineage.check_version_or_alias(version)
    assert refused.value.field == "version"


def test_versions_and_aliases_pass():
    assert [client.lineage.check_version_or_alias(v) for v in (1, "7", "previous", "canary")] == [
        1, 7, "previous", "canary"]


@pytest.mark.parametrize("value", ["ABCDEF01", "0123", "g" * 20, "0" * 65, "../00000000"])
def test_ids_other_than_lowercase_hex_are_refused(value):
    with pytest.raises(QueryRefused) as refused:
        client.data.check_id("feature_set_id", value)
    assert refused.value.field == "feature_set_id"


def test_scheduled_commands_are_described_by_what_they_do():
    from messages.ingestion import IngestBatch
    from messages.training import TrainModels

    kind, what, detail = client.schedules.describe(
        IngestBatch(dataset="iris", path="/d/iris.csv", format="csv", key_column="id", label_column="species"))
    assert kind == "ingest" and "/d/iris.csv" in what and "'iris'" in what
    assert detail == {"dataset": "iris", "path": "/d/iris.csv", "format": "csv", "key": "id", "time": None,
                      "label": "species"}
    kind, what, detail = client.schedules.describe(TrainModels(config_toml='model = "m"\nfeature_set = "ab12cd34"'))
    assert (kind, what) == ("train", "train model 'm' on feature set ab12cd34")
    assert client.schedules.describe(TrainModels(config_toml="not [ toml"))[0] == "train"


def test_audit_summary_leaves_out_the_envelope():
    detail = {"type": "model.deployed", "msg_id": "a" * 32, "correlation_id": "b", "causation_id": "",
              "produced_at": 1.0, "model": "cancer", "version": 2, "previous_version": None, "alias": "production"}
    assert client.audit.summary(detail) == "model=cancer version=2 alias=production"
