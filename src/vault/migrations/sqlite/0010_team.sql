-- A team on a shared daemon: its members and what each may use. Every row
-- carries an authentication tag (the SHA-256 of the row, sealed under the
-- data key and bound to the row's key): a row written outside authsome (a
-- database operator adding themselves as an admin) does not open and is
-- ignored. See src/vault/team.rs.
CREATE TABLE team_members (
    did      TEXT PRIMARY KEY,
    role     TEXT NOT NULL CHECK (role IN ('admin', 'member')),
    added_by TEXT,
    added_at INTEGER NOT NULL,
    tag      BLOB NOT NULL
) STRICT;

CREATE TABLE team_grants (
    did          TEXT NOT NULL REFERENCES team_members (did) ON DELETE CASCADE,
    provider     TEXT NOT NULL,
    connection   TEXT NOT NULL DEFAULT '*',
    allow_export INTEGER NOT NULL DEFAULT 0,
    granted_by   TEXT,
    granted_at   INTEGER NOT NULL,
    tag          BLOB NOT NULL,
    PRIMARY KEY (did, provider, connection)
) STRICT;

-- PoP token ids already used, until they expire (the replay set shared by
-- several daemon replicas on one store).
CREATE TABLE pop_seen (
    jti TEXT PRIMARY KEY,
    exp INTEGER NOT NULL
) STRICT;

-- A member's own audit entries (`GET /api/audit` for a member).
CREATE INDEX audit_actor ON audit (actor, ts DESC);
