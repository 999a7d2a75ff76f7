"""The console's database schema, as numbered migrations that run once each, in order, on SQLite and PostgreSQL.

A migration is a list of statements written once for both engines: `{id}` becomes the auto-numbered key column,
`{real}` a double. Add a new migration at the end; never edit one that has shipped (a database that ran it keeps
what it made).
"""

MIGRATIONS = (
    # 1: the first schema
    (
        # One row per post ever heard; lat/lon and config come from `get config` replies and survive restarts.
        """CREATE TABLE nodes (
            id TEXT PRIMARY KEY, first_rx BIGINT NOT NULL, last_rx BIGINT NOT NULL,
            lat {real}, lon {real}, groups_json TEXT NOT NULL DEFAULT '[]', fw TEXT,
            config_json TEXT, config_rx BIGINT, energy_counter_wh {real}, energy_counter_t BIGINT)""",
        """CREATE TABLE status_log (
            {id}, node TEXT NOT NULL, rx {real} NOT NULL, online INTEGER NOT NULL, reason TEXT, fw TEXT,
            doc TEXT NOT NULL)""",
        "CREATE INDEX status_log_node ON status_log (node, rx)",
        """CREATE TABLE state_log (
            {id}, node TEXT NOT NULL, rx {real} NOT NULL, t BIGINT, level {real}, reason TEXT,
            faults TEXT NOT NULL, doc TEXT NOT NULL)""",
        "CREATE INDEX state_log_node ON state_log (node, rx)",
        # One row per raised alarm; clearing fills cleared_rx. An open alarm has cleared_rx NULL.
        """CREATE TABLE alarms (
            {id}, node TEXT NOT NULL, name TEXT NOT NULL, raised_rx {real} NOT NULL, raised_t BIGINT,
            cleared_rx {real}, cleared_t BIGINT, detail TEXT, acked_by TEXT, acked_rx {real})""",
        "CREATE INDEX alarms_open ON alarms (node, name, cleared_rx)",
        "CREATE INDEX alarms_rx ON alarms (raised_rx)",
        """CREATE TABLE events (
            {id}, node TEXT NOT NULL, rx {real} NOT NULL, t BIGINT, kind TEXT NOT NULL, doc TEXT NOT NULL)""",
        "CREATE INDEX events_node ON events (node, rx)",
        """CREATE TABLE commands (
            id TEXT PRIMARY KEY, rx {real} NOT NULL, username TEXT NOT NULL, target_kind TEXT NOT NULL,
            target TEXT NOT NULL, cmd TEXT NOT NULL, doc TEXT NOT NULL)""",
        """CREATE TABLE command_results (
            command_id TEXT NOT NULL, node TEXT NOT NULL, rx {real} NOT NULL, result TEXT NOT NULL, reply TEXT,
            PRIMARY KEY (command_id, node))""",
        # Raw telemetry, kept `raw_days`; t is the node's clock (the chart axis), rx the console's (retention).
        """CREATE TABLE tele_raw (
            node TEXT NOT NULL, rx {real} NOT NULL, t BIGINT NOT NULL, level {real}, lux {real}, v {real},
            a {real}, w {real}, pf {real}, energy_wh {real}, rssi INTEGER)""",
        "CREATE INDEX tele_raw_node_t ON tele_raw (node, t)",
        "CREATE INDEX tele_raw_rx ON tele_raw (rx)",
        # Hourly aggregates (sums, so an upsert per sample keeps them exact), kept `hourly_days`.
        """CREATE TABLE tele_hourly (
            node TEXT NOT NULL, hour BIGINT NOT NULL, n INTEGER NOT NULL, level_sum {real} NOT NULL,
            lux_sum {real} NOT NULL, lux_n INTEGER NOT NULL, w_sum {real} NOT NULL, w_n INTEGER NOT NULL,
            w_max {real}, PRIMARY KEY (node, hour))""",
        # Metered energy per node and month (the node's own clock), and the all-night-full baseline beside it.
        """CREATE TABLE energy_monthly (
            node TEXT NOT NULL, month TEXT NOT NULL, wh {real} NOT NULL, baseline_wh {real} NOT NULL,
            PRIMARY KEY (node, month))""",
        """CREATE TABLE users (
            name TEXT PRIMARY KEY, pw_hash TEXT NOT NULL, role TEXT NOT NULL, created {real} NOT NULL)""",
        """CREATE TABLE sessions (
            token TEXT PRIMARY KEY, username TEXT NOT NULL, csrf TEXT NOT NULL, created {real} NOT NULL,
            last_rx {real} NOT NULL)""",
    ),
)
