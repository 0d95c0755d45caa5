-- Step deadlines and the saga history were added to the saga tables here;
-- they are part of pkg/saga's own migrations now, which bring a database
-- from before them up to date. Nothing is left to do in this version.

-- +goose Up
SELECT 1;

-- +goose Down
SELECT 1;
