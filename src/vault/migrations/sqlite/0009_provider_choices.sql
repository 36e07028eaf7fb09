-- The provider the user chose on a host rule that several connected
-- providers claim (`authsome set-default`): the proxy sends that
-- provider's credential there instead of refusing the request. Dropped
-- when the provider's last connection goes.
CREATE TABLE provider_choices (
    rule       TEXT PRIMARY KEY,
    provider   TEXT NOT NULL,
    chosen_at  INTEGER NOT NULL
);
