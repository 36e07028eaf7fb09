-- An authentication tag over each stored provider definition (AES-256-GCM
-- under the vault's data key, bound to the provider's name): a definition
-- edited in the file, outside authsome, fails its check and is not used.
ALTER TABLE custom_providers ADD COLUMN tag BLOB;
