-- A team on a shared daemon: its members and what each may use (the
-- PostgreSQL twin of sqlite/0010_team.sql). Every row carries an
-- authentication tag: a row written outside authsome does not open and is
-- ignored. See src/vault/team.rs.
CREATE TABLE team_members (
    did      TEXT PRIMARY KEY,
    role     TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    added_by TEXT,
    added_at BIGINT NOT NULL,
    tag      BYTEA NOT NULL
);

CREATE TABLE team_grants (
    did          TEXT NOT NULL REFERENCES team_members (did) ON DELETE CASCADE,
    provider     TEXT NOT NULL,
    connection   TEXT NOT NULL DEFAULT '*',
    allow_export BIGINT NOT NULL DEFAULT 0,
    granted_by   TEXT,
    granted_at   BIGINT NOT NULL,
    tag          BYTEA NOT NULL,
    PRIMARY KEY (did, provider, connection)
);

CREATE TABLE pop_seen (
    jti TEXT PRIMARY KEY,
    exp BIGINT NOT NULL
);

CREATE INDEX audit_actor ON audit (actor, ts DESC);
