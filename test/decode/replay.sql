-- test/decode/replay.sql: a consumer of the ivm output plugin, in SQL (test/decode.sh).
--
-- replay.stream holds the lines of each stream in order; replay.run(stream, copies) applies
-- the records of one stream to tables of the same names in schema `copies`, as a consumer
-- would: insert the new row; delete exactly one row equal to the old one (a view's old row
-- is whole; a base table's is its key, or, for an update that kept the key, the key read
-- from the new row); an update is both; truncate empties the copy.  Values are read back
-- from their JSON form with jsonb_populate_record, so the copies also check that every
-- value survives the trip.
CREATE SCHEMA replay;
CREATE TABLE replay.stream (stream text NOT NULL, n bigserial, line text NOT NULL);
CREATE TABLE replay.incoming (n bigserial, line text NOT NULL);  -- \copy lands here first

CREATE FUNCTION replay.run(which text, copies text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    rel text;
    target text;
    match jsonb;
    found bigint;
    applied bigint := 0;
BEGIN
    FOR r IN SELECT s.line::jsonb AS j FROM replay.stream s WHERE s.stream = which ORDER BY s.n LOOP
        CONTINUE WHEN r.j->>'op' IN ('begin', 'commit');
        rel := coalesce(r.j->>'view', r.j->>'table');
        target := format('%I.%I', copies, split_part(rel, '.', 2));
        IF r.j->>'op' = 'truncate' THEN
            EXECUTE 'DELETE FROM ' || target;
        END IF;
        IF r.j->>'op' IN ('delete', 'update') THEN
            match := r.j->'old';
            IF match IS NULL AND r.j ? 'table' THEN
                SELECT jsonb_object_agg(a.attname, r.j->'new'->a.attname) INTO match
                FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
                WHERE i.indrelid = rel::regclass AND i.indisprimary;
            END IF;
            IF match IS NULL THEN
                RAISE EXCEPTION 'replay %: % record without old row: %', which, r.j->>'op', r.j;
            END IF;
            EXECUTE format('DELETE FROM %s WHERE ctid = (SELECT ctid FROM %s t WHERE t = jsonb_populate_record(t, $1) LIMIT 1)',
                           target, target) USING match;
            GET DIAGNOSTICS found = ROW_COUNT;
            IF found <> 1 THEN
                RAISE EXCEPTION 'replay %: no row of % equals %', which, target, match;
            END IF;
        END IF;
        IF r.j->>'op' IN ('insert', 'update') THEN
            EXECUTE format('INSERT INTO %s SELECT * FROM jsonb_populate_record(NULL::%s, $1)', target, target)
                USING r.j->'new';
        END IF;
        applied := applied + 1;
    END LOOP;
    RETURN applied;
END
$$;

-- replay.differences(original, copy): rows in one and not the other (EXCEPT ALL both ways).
CREATE FUNCTION replay.differences(original regclass, copy regclass) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM ((TABLE %s EXCEPT ALL TABLE %s) UNION ALL (TABLE %s EXCEPT ALL TABLE %s)) d',
                   original, copy, copy, original) INTO n;
    RETURN n;
END
$$;
