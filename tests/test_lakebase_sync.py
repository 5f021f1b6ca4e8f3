"""Synced tables against a real PostgreSQL: snapshot, incremental, Lakebase's rules, crashes."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from orchestration.changes import record_change
from orchestration.lakebase import sync as sync_module
from orchestration.lakebase import target
from orchestration.lakebase.postgres import Lakebase, with_database
from orchestration.lakebase.sync import DuplicateKeyError, sync_table
from orchestration.lakebase.target import SchemaChangeRefusedError
from orchestration.lakebase.workload import SyncPolicy, TableToSync
from orchestration.warehouse import Warehouse

SCHEMA = "dev"
STATS = "gold_sensor_hourly_stats"


def spec(policy: SyncPolicy, timeseries_key: str | None = None) -> TableToSync:
    return TableToSync(
        name=STATS,
        primary_keys=["sensor_id", "hour"],
        scheduling_policy=policy,
        timeseries_key=timeseries_key,
    )


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    return Warehouse(database_path=str(tmp_path / "warehouse.duckdb"))


def gold(warehouse: Warehouse, rows: int, temperature: str = "61.0") -> None:
    """A gold-shaped table: `rows` sensor-hours (HUGEINT sums, timestamps with time zone)."""
    with warehouse.connect() as duck:
        duck.execute(
            f"CREATE OR REPLACE TABLE {STATS} AS SELECT "
            "'AMS_' || lpad((i % 1000)::VARCHAR, 6, '0') AS sensor_id, "
            "TIMESTAMPTZ '2026-11-01 00:00:00+00' + (i // 1000) * INTERVAL 1 HOUR AS hour, "
            f"{temperature} + (i % 7) AS avg_temperature, sum(1) AS readings "
            f"FROM range({rows}) t(i) GROUP BY ALL"
        )


def sync(warehouse: Warehouse, lakebase: Lakebase, table: TableToSync) -> Any:
    with warehouse.connect() as duck:
        return sync_table(duck, lakebase, table, SCHEMA)


def rows_in(dsn: str, sql: str = f"SELECT count(*) FROM {SCHEMA}.{STATS}") -> Any:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchall()


def both_sides(warehouse: Warehouse, dsn: str, columns: str) -> tuple[list, list]:
    """The same columns, sorted, from the warehouse table and from its synced copy."""
    with warehouse.connect() as duck:
        source = duck.execute(f"SELECT {columns} FROM {STATS}").fetchall()
    return sorted(source), sorted(rows_in(dsn, f"SELECT {columns} FROM {SCHEMA}.{STATS}"))


def test_snapshot_copies_the_table_and_replaces_it(warehouse: Warehouse, lakebase_db: str) -> None:
    lakebase = Lakebase(dsn=lakebase_db)
    gold(warehouse, 3000)
    result = sync(warehouse, lakebase, spec(SyncPolicy.SNAPSHOT))
    assert (result.source_rows, result.target_rows, result.full_copy) == (3000, 3000, True)
    assert rows_in(lakebase_db) == [(3000,)]
    gold(warehouse, 2000, temperature="70.0")
    sync(warehouse, lakebase, spec(SyncPolicy.SNAPSHOT))
    assert rows_in(lakebase_db, f"SELECT count(*), min(avg_temperature) FROM {SCHEMA}.{STATS}") == [
        (2000, 70.0)
    ]
    types = dict(rows_in(lakebase_db, "SELECT column_name, data_type FROM "
                         f"information_schema.columns WHERE table_name = '{STATS}'"))  # fmt: skip
    assert types["hour"] == "timestamp with time zone" and types["readings"] == "bigint"
    key = rows_in(lakebase_db, f"SELECT count(*) FROM pg_indexes WHERE indexname = '{STATS}_pkey'")
    assert key == [(1,)]
    logged = rows_in(lakebase_db, "SELECT policy, target_rows FROM _lakebase.syncs ORDER BY 2")
    assert logged == [("SNAPSHOT", 2000), ("SNAPSHOT", 3000)]


def test_a_reader_during_a_snapshot_sees_the_old_table_or_the_new_one(
    warehouse: Warehouse, lakebase_db: str
) -> None:
    lakebase = Lakebase(dsn=lakebase_db)
    gold(warehouse, 50_000)
    sync(warehouse, lakebase, spec(SyncPolicy.SNAPSHOT))
    gold(warehouse, 80_000)
    seen: set[int] = set()
    done = threading.Event()

    def read() -> None:
        with psycopg.connect(lakebase_db, autocommit=True) as conn:
            while not done.is_set():
                seen.add(conn.execute(f"SELECT count(*) FROM {SCHEMA}.{STATS}").fetchone()[0])  # type: ignore[index]

    reader = threading.Thread(target=read)
    reader.start()
    try:
        sync(warehouse, lakebase, spec(SyncPolicy.SNAPSHOT))
    finally:
        done.set()
        reader.join()
    assert seen <= {50_000, 80_000} and 50_000 in seen
    assert rows_in(lakebase_db) == [(80_000,)]


def test_a_snapshot_killed_before_its_swap_leaves_the_old_table_and_the_next_completes(
    warehouse: Warehouse, lakebase_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    lakebase = Lakebase(dsn=lakebase_db)
    gold(warehouse, 1000)
    sync(warehouse, lakebase, spec(SyncPolicy.SNAPSHOT))
    gold(warehouse, 1500)

    def killed(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt("killed after the copy, before the swap")

    with monkeypatch.context() as patch:
        patch.setattr(target, "swap_in", killed)
        with pytest.raises(KeyboardInterrupt):
            sync(warehouse, lakebase, spec(SyncPolicy.SNAPSHOT))
    assert rows_in(lakebase_db) == [(1000,)]
    sync(warehouse, lakebase, spec(SyncPolicy.SNAPSHOT))
    assert rows_in(lakebase_db) == [(1500,)]
    leftovers = rows_in(
        lakebase_db, "SELECT count(*) FROM pg_tables WHERE tablename LIKE '%sync_new'"
    )
    assert leftovers == [(0,)]


def test_triggered_applies_only_changed_rows_and_propagates_deletes(
    warehouse: Warehouse, lakebase_db: str
) -> None:
    lakebase = Lakebase(dsn=lakebase_db)
    gold(warehouse, 5000)
    first = sync(warehouse, lakebase, spec(SyncPolicy.TRIGGERED))
    assert (first.full_copy, first.upserted, first.deleted) == (True, 5000, 0)
    with warehouse.connect() as duck:
        duck.execute(f"UPDATE {STATS} SET avg_temperature = 99 WHERE sensor_id = 'AMS_000001'")
        duck.execute(f"DELETE FROM {STATS} WHERE sensor_id = 'AMS_000002'")
        duck.execute(
            f"INSERT INTO {STATS} VALUES ('AMS_999999', TIMESTAMPTZ '2026-11-01 00:00:00+00', 1, 1)"
        )
    second = sync(warehouse, lakebase, spec(SyncPolicy.TRIGGERED))
    assert (second.full_copy, second.upserted, second.deleted) == (False, 6, 5)
    expected, actual = both_sides(warehouse, lakebase_db, "sensor_id, hour, avg_temperature")
    assert actual == expected
    third = sync(warehouse, lakebase, spec(SyncPolicy.TRIGGERED))
    assert (third.upserted, third.deleted) == (0, 0)


def test_a_sync_killed_after_postgres_committed_is_completed_by_a_full_compare(
    warehouse: Warehouse, lakebase_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The killed sync published a change the warehouse never remembered; the source then
    changes back. Comparing with the stale memory would miss that; the sync ids say so."""
    lakebase = Lakebase(dsn=lakebase_db)
    gold(warehouse, 2000)
    sync(warehouse, lakebase, spec(SyncPolicy.TRIGGERED))
    one = "WHERE sensor_id = 'AMS_000001'"
    with warehouse.connect() as duck:
        duck.execute(f"CREATE TABLE saved AS SELECT * FROM {STATS} {one}")
        duck.execute(f"UPDATE {STATS} SET avg_temperature = 99 {one}")
        duck.execute(f"DELETE FROM {STATS} WHERE sensor_id = 'AMS_000003'")

    def killed(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt("killed before the warehouse remembered the sync")

    with monkeypatch.context() as patch:
        patch.setattr(sync_module.state, "remember", killed)
        with pytest.raises(KeyboardInterrupt):
            sync(warehouse, lakebase, spec(SyncPolicy.TRIGGERED))
    published = f"SELECT DISTINCT avg_temperature FROM {SCHEMA}.{STATS} {one}"
    assert rows_in(lakebase_db, published) == [(99.0,)]
    with warehouse.connect() as duck:  # the source changes back meanwhile
        duck.execute(f"UPDATE {STATS} s SET avg_temperature = saved.avg_temperature FROM saved "
                     "WHERE s.sensor_id = saved.sensor_id AND s.hour = saved.hour")  # fmt: skip
    recovered = sync(warehouse, lakebase, spec(SyncPolicy.TRIGGERED))
    assert recovered.full_copy
    expected, actual = both_sides(warehouse, lakebase_db, "sensor_id, hour, avg_temperature")
    assert actual == expected and len(actual) == 1998


def test_null_keys_are_skipped_and_counted_duplicates_fail_unless_a_timeseries_key_decides(
    warehouse: Warehouse, lakebase_db: str
) -> None:
    lakebase = Lakebase(dsn=lakebase_db)
    gold(warehouse, 100)
    with warehouse.connect() as duck:
        duck.execute(
            f"INSERT INTO {STATS} VALUES (NULL, TIMESTAMPTZ '2026-11-01 00:00:00+00', 1, 1)"
        )
        duck.execute(f"INSERT INTO {STATS} SELECT sensor_id, hour, 42, readings + 1 FROM {STATS} "
                     "WHERE sensor_id = 'AMS_000005'")  # fmt: skip
    with pytest.raises(DuplicateKeyError, match="AMS_000005"):
        sync(warehouse, lakebase, spec(SyncPolicy.SNAPSHOT))
    result = sync(warehouse, lakebase, spec(SyncPolicy.SNAPSHOT, timeseries_key="readings"))
    assert result.skipped_null_keys == 1 and result.target_rows == 100
    latest = rows_in(lakebase_db, f"SELECT avg_temperature FROM {SCHEMA}.{STATS} "
                     "WHERE sensor_id = 'AMS_000005'")  # fmt: skip
    assert latest == [(42.0,)]


def test_added_columns_apply_in_place_other_changes_are_refused(
    warehouse: Warehouse, lakebase_db: str
) -> None:
    lakebase = Lakebase(dsn=lakebase_db)
    gold(warehouse, 100)
    sync(warehouse, lakebase, spec(SyncPolicy.TRIGGERED))
    with warehouse.connect() as duck:
        duck.execute(f"ALTER TABLE {STATS} ADD COLUMN max_vibration DOUBLE DEFAULT 1.5")
    added = sync(warehouse, lakebase, spec(SyncPolicy.TRIGGERED))
    assert added.columns_added == ["max_vibration"]
    assert rows_in(lakebase_db, f"SELECT min(max_vibration) FROM {SCHEMA}.{STATS}") == [(1.5,)]
    with warehouse.connect() as duck:
        duck.execute(f"ALTER TABLE {STATS} ALTER readings TYPE VARCHAR")
    with pytest.raises(SchemaChangeRefusedError, match=r"readings changes type.*DROP TABLE"):
        sync(warehouse, lakebase, spec(SyncPolicy.TRIGGERED))
    assert rows_in(lakebase_db) == [(100,)]


def test_the_application_role_can_read_synced_tables_but_not_write_them(
    warehouse: Warehouse, lakebase_db: str
) -> None:
    lakebase = Lakebase(dsn=lakebase_db)
    gold(warehouse, 10)
    sync(warehouse, lakebase, spec(SyncPolicy.SNAPSHOT))
    as_app = psycopg.conninfo.make_conninfo(lakebase_db, user=lakebase.app_role_for(SCHEMA))
    with psycopg.connect(as_app) as conn:
        assert conn.execute(f"SELECT count(*) FROM {SCHEMA}.{STATS}").fetchone() == (10,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"DELETE FROM {SCHEMA}.{STATS}")


def rewrite_hour(warehouse: Warehouse, hour: int, rows: str = "SELECT * FROM old") -> None:
    """Rewrite one hour the way the gold assets do: replace its rows (`rows`, over the hour's
    `old` rows) and record the change, in one transaction."""
    start = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(hours=hour)
    end = start + timedelta(hours=1)
    window = "WHERE hour >= ? AND hour < ?"
    with warehouse.connect() as duck:
        duck.execute("BEGIN TRANSACTION")
        duck.execute(f"CREATE TEMP TABLE old AS SELECT * FROM {STATS} {window}", [start, end])
        duck.execute(f"DELETE FROM {STATS} {window}", [start, end])
        duck.execute(f"INSERT INTO {STATS} {rows}")
        record_change(duck, STATS, "hour", start, end)
        duck.execute("COMMIT")


def test_with_a_change_feed_only_the_rewritten_hours_are_compared(
    warehouse: Warehouse, lakebase_db: str
) -> None:
    lakebase = Lakebase(dsn=lakebase_db)
    gold(warehouse, 5000)  # 5 hours of 1000 sensors
    sync(warehouse, lakebase, spec(SyncPolicy.TRIGGERED))
    rewrite_hour(warehouse, 0)  # the table gets a feed: one more comparison of every row
    started = sync(warehouse, lakebase, spec(SyncPolicy.TRIGGERED))
    assert (started.full_copy, started.upserted, started.compared) == (False, 0, 5000)
    rewrite_hour(warehouse, 3, "SELECT * FROM old WHERE sensor_id <> 'AMS_000007'")  # one gone
    ten_changed = (
        "SELECT * REPLACE (CASE WHEN sensor_id < 'AMS_000010' THEN -1 "
        "ELSE avg_temperature END AS avg_temperature) FROM old"
    )
    rewrite_hour(warehouse, 4, ten_changed)
    second = sync(warehouse, lakebase, spec(SyncPolicy.TRIGGERED))
    assert (second.full_copy, second.upserted, second.deleted) == (False, 10, 1)
    assert second.compared == 1999  # hours 3 and 4 only, not all 4999 rows
    expected, actual = both_sides(warehouse, lakebase_db, "sensor_id, hour, avg_temperature")
    assert actual == expected
    nothing = sync(warehouse, lakebase, spec(SyncPolicy.TRIGGERED))  # no new changes
    assert (nothing.full_copy, nothing.upserted, nothing.deleted, nothing.compared) == (
        False,
        0,
        0,
        0,
    )


def test_rows_lost_outside_the_change_feed_make_the_sync_compare_everything(
    warehouse: Warehouse, lakebase_db: str
) -> None:
    lakebase = Lakebase(dsn=lakebase_db)
    gold(warehouse, 3000)
    rewrite_hour(warehouse, 0)
    sync(warehouse, lakebase, spec(SyncPolicy.TRIGGERED))
    with warehouse.connect() as duck:  # a writer that does not record its change
        duck.execute(f"DELETE FROM {STATS} WHERE hour = TIMESTAMPTZ '2026-11-01 02:00:00+00'")
    rewrite_hour(warehouse, 1)
    result = sync(warehouse, lakebase, spec(SyncPolicy.TRIGGERED))
    assert (result.full_copy, result.deleted) == (True, 1000)
    expected, actual = both_sides(warehouse, lakebase_db, "sensor_id, hour, avg_temperature")
    assert actual == expected and len(actual) == 2000


def test_an_idle_reader_never_stalls_other_readers_behind_a_snapshot_swap(
    warehouse: Warehouse, lakebase_db: str
) -> None:
    """A reader idle in a transaction holds its lock; the swap waits a bounded time per
    attempt, so readers queued behind it wait at most that long; then the sync fails clearly,
    the old table stays, and the next sync (reader gone) swaps."""
    import time

    lakebase = Lakebase(dsn=lakebase_db, swap_lock_timeout_ms=300, swap_attempts=3)
    gold(warehouse, 1000)
    sync(warehouse, lakebase, spec(SyncPolicy.SNAPSHOT))
    gold(warehouse, 1200)
    as_app = psycopg.conninfo.make_conninfo(lakebase_db, user=lakebase.app_role_for(SCHEMA))
    idle = psycopg.connect(as_app)
    idle.execute(f"SELECT count(*) FROM {SCHEMA}.{STATS}").fetchone()  # and stays in the txn
    waits: list[float] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def other_reader() -> None:
        with psycopg.connect(as_app, autocommit=True) as conn:
            while not done.is_set():
                began = time.perf_counter()
                conn.execute(f"SELECT count(*) FROM {SCHEMA}.{STATS}").fetchone()
                waits.append(time.perf_counter() - began)
                time.sleep(0.01)

    def snapshot() -> None:
        try:
            sync(warehouse, lakebase, spec(SyncPolicy.SNAPSHOT))
        except BaseException as exc:
            errors.append(exc)

    reader = threading.Thread(target=other_reader)
    reader.start()
    try:
        syncer = threading.Thread(target=snapshot)
        syncer.start()
        syncer.join(timeout=60)
    finally:
        done.set()
        reader.join()
    assert len(errors) == 1 and isinstance(errors[0], target.LockWaitExceededError)
    assert "3 attempts of 300 ms" in str(errors[0])
    assert len(waits) > 10 and max(waits) < 0.3 + 0.5  # never much past one lock timeout
    assert rows_in(lakebase_db) == [(1000,)]  # the old table stays whole
    idle.close()
    result = sync(warehouse, lakebase, spec(SyncPolicy.SNAPSHOT))
    assert result.lock_attempts == 1 and rows_in(lakebase_db) == [(1200,)]


def test_the_application_role_cannot_create_temp_tables_or_lock_synced_tables(
    warehouse: Warehouse, lakebase_db: str
) -> None:
    lakebase = Lakebase(dsn=lakebase_db)
    gold(warehouse, 10)
    sync(warehouse, lakebase, spec(SyncPolicy.SNAPSHOT))
    as_app = psycopg.conninfo.make_conninfo(lakebase_db, user=lakebase.app_role_for(SCHEMA))
    for statement in (
        "CREATE TEMP TABLE scratch (i int)",
        f"LOCK TABLE {SCHEMA}.{STATS} IN EXCLUSIVE MODE",
        f"LOCK TABLE {SCHEMA}.{STATS} IN ACCESS EXCLUSIVE MODE",
    ):
        with psycopg.connect(as_app) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)
    with psycopg.connect(as_app) as conn:  # what a SELECT takes is all it may take
        conn.execute(f"LOCK TABLE {SCHEMA}.{STATS} IN ACCESS SHARE MODE")
        timeout = conn.execute("SHOW idle_in_transaction_session_timeout").fetchone()
    assert timeout == ("1min",)


def test_declared_indexes_are_built_before_the_swap_and_on_existing_tables(
    warehouse: Warehouse, lakebase_db: str
) -> None:
    from orchestration.lakebase.workload import TableIndex

    lakebase = Lakebase(dsn=lakebase_db)
    gold(warehouse, 3000)
    hour_index = TableIndex(columns=["hour DESC"], include=["avg_temperature"])
    indexed = spec(SyncPolicy.SNAPSHOT).model_copy(update={"indexes": [hour_index]})
    query = (
        "SELECT indexname, indexdef FROM pg_indexes "
        f"WHERE tablename = '{STATS}' AND indexname <> '{STATS}_pkey'"
    )
    for _ in range(2):  # created, then rebuilt on the staged table and renamed at the swap
        sync(warehouse, lakebase, indexed)
        ((name, definition),) = rows_in(lakebase_db, query)
        assert name == hour_index.name_for(STATS)
        assert "(hour DESC) INCLUDE (avg_temperature)" in definition
    # An index declared later is built by the next incremental sync of the existing table.
    by_sensor = TableIndex(columns=["avg_temperature"])
    triggered = spec(SyncPolicy.TRIGGERED).model_copy(update={"indexes": [hour_index, by_sensor]})
    sync(warehouse, lakebase, triggered)
    assert {n for n, _ in rows_in(lakebase_db, query)} == {
        hour_index.name_for(STATS),
        by_sensor.name_for(STATS),
    }
    with psycopg.connect(lakebase_db) as conn:  # the planner uses it for the dashboards' filter
        plan = conn.execute(
            f"EXPLAIN SELECT hour, avg_temperature FROM {SCHEMA}.{STATS} "
            "WHERE hour >= '2026-11-01 02:00+00' ORDER BY hour DESC"
        ).fetchall()
    assert "Index Only Scan" in " ".join(r[0] for r in plan)


def as_role(dsn: str, role: str, database: str | None = None) -> str:
    if database is not None:
        dsn = with_database(dsn, database)
    return psycopg.conninfo.make_conninfo(dsn, user=role)


def test_each_environment_has_its_own_app_role_confined_to_its_schema(
    warehouse: Warehouse, lakebase_db: str
) -> None:
    """Two environments in one database: each app role reads its own schema only, creates
    nothing (not in `public`, not a schema) and, on a server the project owns, cannot connect
    to the server's other databases."""
    lakebase = Lakebase(dsn=lakebase_db, owns_server=True)
    gold(warehouse, 10)
    with warehouse.connect() as duck:
        for schema in ("dev", "staging"):
            sync_table(duck, lakebase, spec(SyncPolicy.SNAPSHOT), schema)
    roles = {schema: lakebase.app_role_for(schema) for schema in ("dev", "staging")}
    assert roles == {"dev": "lakebase_app_dev", "staging": "lakebase_app_staging"}
    # The one role every environment shared before: as an earlier version left it, it reads
    # dev; the next sync of dev takes that away.
    with psycopg.connect(lakebase_db, autocommit=True) as admin:
        admin.execute("CREATE ROLE lakebase_app LOGIN")
        admin.execute("GRANT USAGE ON SCHEMA dev TO lakebase_app")
        admin.execute(f"GRANT SELECT ON dev.{STATS} TO lakebase_app")
    with warehouse.connect() as duck:
        sync_table(duck, lakebase, spec(SyncPolicy.SNAPSHOT), "dev")
    with psycopg.connect(lakebase_db, autocommit=True) as admin:
        shared = admin.execute(
            "SELECT has_schema_privilege('lakebase_app', 'dev', 'USAGE'), "
            f"has_table_privilege('lakebase_app', 'dev.{STATS}', 'SELECT')"
        ).fetchone()
        admin.execute("DROP ROLE lakebase_app")
    assert shared == (False, False)
    for schema, other in (("dev", "staging"), ("staging", "dev")):
        own = roles[schema]
        with psycopg.connect(as_role(lakebase_db, own), autocommit=True) as conn:
            assert conn.execute(f"SELECT count(*) FROM {schema}.{STATS}").fetchone() == (10,)
            for statement in (
                f"SELECT count(*) FROM {other}.{STATS}",
                "CREATE TABLE public.scratch (i int)",
                "CREATE SCHEMA scratch",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement)
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            psycopg.connect(as_role(lakebase_db, own, database="postgres")).close()


def test_the_app_roles_timeouts_hold_even_when_a_session_sets_them_away(
    warehouse: Warehouse, lakebase_db: str
) -> None:
    """PostgreSQL lets a session SET its timeouts (no privilege stops it). The role's defaults
    apply until it does; past a limit, the sync ends such a session before its swap, so a
    reader that sets its limits away still cannot hold a synced table."""
    import time

    limits = {"app_statement_timeout_ms": 500, "app_idle_in_transaction_timeout_ms": 500}
    lakebase = Lakebase(dsn=lakebase_db, **limits)
    gold(warehouse, 1000)
    sync(warehouse, lakebase, spec(SyncPolicy.SNAPSHOT))
    as_app = as_role(lakebase_db, lakebase.app_role_for(SCHEMA))
    idle = psycopg.connect(as_app)
    defaults = (
        "SELECT current_setting('statement_timeout'), "
        "current_setting('idle_in_transaction_session_timeout')"
    )
    assert idle.execute(defaults).fetchone() == ("500ms", "500ms")
    idle.execute("SET statement_timeout = 0")  # allowed: the role's settings are defaults only
    idle.execute("SET idle_in_transaction_session_timeout = 0")
    assert idle.execute(defaults).fetchone() == ("0", "0")
    idle.execute(f"SELECT count(*) FROM {SCHEMA}.{STATS}").fetchone()  # holds its lock, idle
    failures: list[BaseException] = []

    def long_statement() -> None:
        with psycopg.connect(as_app, autocommit=True) as conn:
            conn.execute("SET statement_timeout = 0")
            try:
                conn.execute(f"SELECT pg_sleep(20) FROM {SCHEMA}.{STATS} LIMIT 1")
            except psycopg.OperationalError as exc:
                failures.append(exc)

    busy = threading.Thread(target=long_statement)
    busy.start()
    running = (
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
        "AND query LIKE '%pg_sleep(20)%' AND pid <> pg_backend_pid()"
    )
    while rows_in(lakebase_db, running) != [(1,)]:
        time.sleep(0.05)
    time.sleep(0.8)  # both sessions are now past their limits
    gold(warehouse, 1200)
    result = sync(warehouse, lakebase, spec(SyncPolicy.SNAPSHOT))
    busy.join(timeout=30)
    assert (result.lock_attempts, result.app_sessions_ended) == (1, 2)
    assert rows_in(lakebase_db) == [(1200,)]
    assert len(failures) == 1  # the long statement was ended
    with pytest.raises(psycopg.OperationalError):
        idle.execute("SELECT 1")  # and so was the session idle in its transaction
    idle.close()


# An unescaped LIKE 'gold_readings__%' (or 'gold_read_ngs__%') matches the others' names too.
READINGS = ("gold_readings", "gold_readings_x", "gold_read_ngs")


def readings(warehouse: Warehouse, value: int) -> None:
    with warehouse.connect() as duck:
        for name in READINGS:
            rows = f"SELECT i AS id, {value} AS v FROM range(100) t(i)"
            duck.execute(f"CREATE OR REPLACE TABLE {name} AS {rows}")


def readings_spec(name: str) -> TableToSync:
    return TableToSync(name=name, primary_keys=["id"], scheduling_policy=SyncPolicy.TRIGGERED)


def staging_tables(dsn: str) -> set[str]:
    found = rows_in(
        dsn,
        "SELECT tablename FROM pg_tables WHERE schemaname = '_lakebase' "
        "AND tablename NOT IN ('syncs', 'staging')",
    )
    return {name for (name,) in found}


def test_two_environments_in_one_database_keep_their_own_staging_tables_and_log(
    tmp_path: Path, lakebase_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dev and staging sync tables whose names an unescaped LIKE confuses into one database:
    neither's cleanup drops the other's staging tables (left by a killed sync, or in use by a
    running one), and each sees only its own syncs in the log."""
    lakebase = Lakebase(dsn=lakebase_db)
    environments = {
        schema: Warehouse(database_path=str(tmp_path / f"{schema}.duckdb"))
        for schema in ("dev", "staging")
    }

    def sync_in(schema: str, name: str) -> Any:
        with environments[schema].connect() as duck:
            return sync_table(duck, lakebase, readings_spec(name), schema)

    for schema, warehouse in environments.items():
        readings(warehouse, 1)
        for name in READINGS:
            sync_in(schema, name)
        readings(warehouse, 2)
    real_upsert = target.upsert

    def killed(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt("killed with its staging tables loaded")

    with monkeypatch.context() as patch:  # dev's gold_readings sync dies, leaving its staging
        patch.setattr(target, "upsert", killed)
        with pytest.raises(KeyboardInterrupt):
            sync_in("dev", "gold_readings")
    dev_leftovers = staging_tables(lakebase_db)
    assert len(dev_leftovers) == 2

    def other_environment_syncs_first(*args: Any, **kwargs: Any) -> int:
        """dev's gold_readings_x sync has staged its rows; staging syncs every table now."""
        monkeypatch.setattr(target, "upsert", real_upsert)
        in_flight = staging_tables(lakebase_db) - dev_leftovers
        for name in READINGS:
            assert not sync_in("staging", name).full_copy  # dev's syncs are not staging's
        assert staging_tables(lakebase_db) == dev_leftovers | in_flight  # nothing of dev's gone
        return real_upsert(*args, **kwargs)

    monkeypatch.setattr(target, "upsert", other_environment_syncs_first)
    dev_x = sync_in("dev", "gold_readings_x")
    assert (dev_x.full_copy, dev_x.upserted) == (False, 100)
    assert staging_tables(lakebase_db) == dev_leftovers  # dev's killed sync's, until it reruns
    assert sync_in("dev", "gold_readings").upserted == 100  # the killed sync, completed
    assert staging_tables(lakebase_db) == set()
    sync_in("dev", "gold_read_ngs")
    for schema in ("dev", "staging"):
        for name in READINGS:
            expected = rows_in(lakebase_db, f"SELECT min(v), count(*) FROM {schema}.{name}")
            assert expected == [(2, 100)]
    per_schema = "SELECT schema_name, count(*) FROM _lakebase.syncs GROUP BY 1 ORDER BY 1"
    logged = rows_in(lakebase_db, per_schema)
    assert logged == [("dev", 6), ("staging", 6)]


def test_a_sync_log_from_before_environments_were_told_apart_is_migrated(
    warehouse: Warehouse, lakebase_db: str
) -> None:
    with psycopg.connect(lakebase_db) as conn:  # the log as earlier versions created it
        conn.execute("CREATE SCHEMA _lakebase")
        conn.execute(target.SYNC_LOG_DDL.replace(", schema_name text NOT NULL", ""))
        conn.execute(
            "INSERT INTO _lakebase.syncs VALUES (%s, 'old', 'SNAPSHOT', now(), now(), 1, 10, 10, "
            "10, 0, 0, true, 8192)",
            [STATS],
        )
    lakebase = Lakebase(dsn=lakebase_db)
    gold(warehouse, 10)
    sync(warehouse, lakebase, spec(SyncPolicy.SNAPSHOT))
    logged = rows_in(lakebase_db, "SELECT schema_name, sync_id = 'old' FROM _lakebase.syncs")
    assert sorted(logged) == [("", True), (SCHEMA, False)]  # old rows belong to no environment
