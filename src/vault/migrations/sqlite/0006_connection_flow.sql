-- The login flow that made a connection (`pkce`, `device_code`,
-- `client_credentials`, …), so a connection made with another flow than
-- its provider's default is renewed the way it was made.
ALTER TABLE connections ADD COLUMN flow TEXT;
