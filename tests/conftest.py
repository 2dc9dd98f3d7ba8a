"""Session fixtures: one real cluster (embedded PostgreSQL, Redis, broker, Ray) started
through the CLI and shared by the integration tests; stopped at the end by its own id."""

from __future__ import annotations

import json

import pytest

from tests.support.cluster import CliCluster

#: The session cluster's plugins: a user's own algorithm (tests/support/plugin_algorithms.py) and
#: the demo's deliberately slow classifier (the quick demo runs on the session cluster).
PLUGINS = "tests.support.plugin_algorithms,ml.demo_algorithms"


#: The xdist group of every test that uses the session cluster: one worker runs them all, one
#: after another, on the one cluster it starts; another worker runs the rest meanwhile (the
#: unit tests, and the tests that start clusters of their own), and starts no session cluster.
SESSION_CLUSTER_GROUP = "session-cluster"


@pytest.hookimpl(tryfirst=True)      # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config, items):
    for item in items:
        if "cluster" in getattr(item, "fixturenames", ()):    # directly or through another fixture
            item.add_marker(pytest.mark.xdist_group(SESSION_CLUSTER_GROUP))


@pytest.fixture(scope="session")
def cluster():
    """A running cluster, started with `python run.py cluster start`."""
    # small batch-scoring chunks: a scorer killed after its first chunk has more left to resume;
    # small preparation pieces: the tests' batches are transformed and stored in several
    cli = CliCluster.fresh(CONVEYOR_PLUGINS=PLUGINS, CONVEYOR_LEARNER_CHECKPOINT_EVERY_N="300",
                           CONVEYOR_BATCH_SCORE_CHUNK="2000", CONVEYOR_PREPARE_CHUNK_ROWS="64")
    try:
        cli.start()
    except Exception:
        cli.discard()
        raise
    yield cli
    cli.discard()


@pytest.fixture(scope="session")
def settings(cluster):
    """The running cluster's settings with every address resolved."""
    from storage import embedded
    from storage.settings import load_settings

    base = load_settings(None, {"CONVEYOR_STATE_DIR": str(cluster.state_dir),
                                "CONVEYOR_CLUSTER_NAME": cluster.name, "CONVEYOR_PLUGINS": PLUGINS})
    record = embedded.read_record(base)
    embedded.prepare_ray_environment(record.ray_token_path)
    resolved = embedded.resolve(base, record)
    from actors.remote import connect, disconnect

    connect(resolved.ray_address, resolved.cluster_name)
    yield resolved
    disconnect()


@pytest.fixture(scope="session")
async def conveyor(settings):
    from client.connection import Conveyor

    client = Conveyor.connect(settings)
    yield client
    await client.close()


@pytest.fixture(scope="session")
async def db(settings):
    import asyncpg

    pool = await asyncpg.create_pool(settings.postgres_dsn, min_size=1, max_size=2)
    yield pool
    await pool.close()


def status_json(cluster: CliCluster) -> dict:
    done = cluster.run("cluster", "status", "--json")
    return json.loads(done.stdout)
