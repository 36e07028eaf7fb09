-- Browser-session connections: the captured cookies (a JSON object of
-- name -> value), sealed like the other secret fields and bound to the row
-- and this column.
ALTER TABLE connections ADD COLUMN cookies BLOB;
