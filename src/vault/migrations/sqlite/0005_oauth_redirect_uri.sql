-- The redirect URI a registered client (RFC 7591) was registered with: a
-- daemon whose callback moved (another port, another base URL) registers
-- again instead of sending a redirect URI the server does not know.
ALTER TABLE oauth_clients ADD COLUMN redirect_uri TEXT;
