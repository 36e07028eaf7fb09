-- Vault metadata: key-check value, wrapped data key, KDF salt, key version.
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value ANY NOT NULL
) STRICT;

-- One row per connection. Secret fields are AES-256-GCM blobs whose
-- associated data binds them to (table, id, field, key_version).
CREATE TABLE connections (
    id            TEXT PRIMARY KEY,
    provider      TEXT NOT NULL,
    name          TEXT NOT NULL,
    auth_type     TEXT NOT NULL,
    status        TEXT NOT NULL,
    is_default    INTEGER NOT NULL DEFAULT 0,
    account_label TEXT,
    token_type    TEXT,
    scopes        TEXT NOT NULL DEFAULT '[]',
    expires_at    INTEGER,
    key_version   INTEGER NOT NULL,
    api_key       BLOB,
    access_token  BLOB,
    refresh_token BLOB,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (provider, name)
) STRICT;

CREATE UNIQUE INDEX connections_one_default ON connections (provider) WHERE is_default = 1;

-- Provider definitions registered by the user (normalised JSON).
CREATE TABLE custom_providers (
    name       TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
