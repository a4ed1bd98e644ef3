-- test/smith/schema.sql: the table SQLsmith generates queries against (test/smith/smith.py)
-- besides the four Customer 360 seed tables, which smith.py loads first from
-- demo/schema_and_data.sql: one table without a primary key whose columns have the types the
-- seed lacks (floats, booleans, dates, intervals, bigint, jsonb), with NULLs and duplicate rows.
-- smith.py adds the seed views on top: ivm views in the database the queries are fed to,
-- plain views in the one SQLsmith reads the schema from.

CREATE TABLE measurements (
    k    int,
    x    float8,
    r    real,
    b    boolean,
    d    date,
    iv   interval,
    big  bigint,
    tag  text,
    doc  jsonb
);

INSERT INTO measurements VALUES
(1, 1.5, 0.25, true, '2026-03-01', '1 day', 10000000000, 'a', '{"a": 1}'),
(1, 1.5, 0.25, true, '2026-03-01', '1 day', 10000000000, 'a', '{"a": 1}'),
(2, -3.25, NULL, false, '2026-03-02', '2 hours', -5, 'b', '[1, 2]'),
(2, 0, 1.75, NULL, NULL, '-30 minutes', 0, NULL, NULL),
(3, NULL, -2, true, '2026-03-05', NULL, 7, 'c', '"x"'),
(NULL, 100.125, 3.5, false, '2026-02-28', '1 mon 2 days', NULL, 'a', '{}'),
(4, 1e10, 0, true, '2026-03-10', '0', 3, '', 'null');
