-- 07_multi_table: one statement that changes several tables a view reads.
-- A foreign key's ON DELETE/UPDATE CASCADE, a data-modifying CTE and a user trigger
-- writing to another table all change two base tables of one view within a single
-- statement; the view must come out exact (the changes are maintained together when
-- the statement finishes), also when read inside the transaction.
CREATE SCHEMA multi;
SET search_path = multi, public;

CREATE TABLE parent (id int PRIMARY KEY, name text);
CREATE TABLE child (id int PRIMARY KEY,
                    pid int REFERENCES parent ON DELETE CASCADE ON UPDATE CASCADE,
                    v int);
SELECT mk('pairs', 'SELECT p.name, c.v FROM parent p JOIN child c ON c.pid = p.id');
SELECT mk('per_parent', 'SELECT p.id, p.name, count(c.v) AS n, sum(c.v) AS s
                          FROM parent p LEFT JOIN child c ON c.pid = p.id GROUP BY p.id, p.name');

-- A writable CTE inserting into both tables.
WITH p AS (INSERT INTO parent VALUES (1, 'one'), (2, 'two') RETURNING id)
INSERT INTO child SELECT id * 10 + k, id, k FROM p, generate_series(1, 3) k;
SELECT chk_all();
TABLE per_parent ORDER BY id;

-- ON UPDATE CASCADE: the parent's key and its children's move together.
UPDATE parent SET id = 3 WHERE id = 2;
SELECT chk_all();
TABLE per_parent ORDER BY id;

-- ON DELETE CASCADE, inside a transaction, then rolled back.
BEGIN;
DELETE FROM parent WHERE id = 1;
SELECT chk_all();
TABLE per_parent ORDER BY id;
ROLLBACK;
SELECT chk_all();

-- A user trigger on parent inserting children.
CREATE FUNCTION add_child() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO child VALUES (NEW.id * 100, NEW.id, 7);
    RETURN NEW;
END $$;
CREATE TRIGGER add_child AFTER INSERT ON parent FOR EACH ROW EXECUTE FUNCTION add_child();
INSERT INTO parent VALUES (5, 'five'), (6, 'six');
SELECT chk_all();
TABLE per_parent ORDER BY id;

-- Deleting everything through the cascade.
DELETE FROM parent;
SELECT chk_all();
TABLE per_parent ORDER BY id;
-- INSERT ... ON CONFLICT DO UPDATE and MERGE change the same table through several
-- statement triggers (insert and update); a self-join sees both parts at once.
CREATE TABLE o (id int PRIMARY KEY, cid int, st text);
INSERT INTO o VALUES (1, 8, 'x');
SELECT mk('same_status', 'SELECT a.id, b.id AS id2 FROM o a JOIN o b
                           ON a.cid = b.cid AND a.st = b.st AND a.id < b.id');
INSERT INTO o VALUES (1, 8, 'y'), (2, 8, 'y') ON CONFLICT (id) DO UPDATE SET st = excluded.st;
SELECT chk_all();
TABLE same_status ORDER BY id, id2;
MERGE INTO o USING (VALUES (2, 9, 'y'), (3, 8, 'y')) s(id, cid, st) ON o.id = s.id
WHEN MATCHED THEN UPDATE SET cid = s.cid
WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.cid, s.st);
SELECT chk_all();
TABLE same_status ORDER BY id, id2;
RESET search_path;
