-- What happened, when, to which provider and connection, and who asked.
-- Names, hosts and outcomes only: never a secret value.
CREATE TABLE audit (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    ts         INTEGER NOT NULL,
    event      TEXT NOT NULL,
    provider   TEXT,
    connection TEXT,
    actor      TEXT,
    outcome    TEXT NOT NULL,
    detail     TEXT NOT NULL DEFAULT '{}'
) STRICT;

CREATE INDEX audit_newest ON audit (ts DESC, id DESC);
