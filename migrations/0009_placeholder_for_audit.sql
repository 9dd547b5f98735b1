-- Placeholder: migration 0009 belongs to the audit branch. tern refuses a
-- gap in the sequence, so this branch keeps the number taken until that
-- migration is merged; delete this file when it is.
SELECT 1;

---- create above / drop below ----

SELECT 1;
