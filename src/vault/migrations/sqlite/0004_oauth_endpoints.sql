-- Endpoints discovered for a registered client (RFC 8414 metadata), JSON,
-- for providers whose file names only the resource.
ALTER TABLE oauth_clients ADD COLUMN endpoints TEXT;
