-- OAuth clients, one per provider: from `login --client-id`, the browser
-- form, or dynamic client registration (RFC 7591). Secret fields are
-- AES-256-GCM blobs bound to (oauth_clients, provider, field, key_version).
CREATE TABLE oauth_clients (
    provider                 TEXT PRIMARY KEY,
    client_id                TEXT NOT NULL,
    source                   TEXT NOT NULL,
    base_url                 TEXT,
    registration_client_uri  TEXT,
    key_version              INTEGER NOT NULL,
    client_secret            BLOB,
    registration_access_token BLOB,
    created_at               INTEGER NOT NULL,
    updated_at               INTEGER NOT NULL
) STRICT;
